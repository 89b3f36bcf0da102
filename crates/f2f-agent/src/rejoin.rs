//! Joining a swarm, and coming back to it while the control plane is away: what the agent
//! remembers of each swarm (the stream URL that defined it, its certificate, members'
//! signalling contacts), and the first contact: a certificate from the control plane (or the
//! remembered one while it has a while to run), then the tracker, else those members.
//!
//! A member reached through its contact cannot certify anyone; it checks the certificate the
//! node presents and names itself as entry peer. The node's first connection is signalled
//! through that member's socket, and from then on the overlay carries its signalling.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use f2f_control::protocol::{Contact, FromTracker, ToTracker, welcome_identity};
use f2f_core::id::{PeerId, SwarmId};
use f2f_core::identity::{Certificate, Crypto, Keypair, PublicKey, UnixTime, prove_possession};
use f2f_http::token::token_of;
use rand::seq::SliceRandom;

use crate::control::ControlClient;
use crate::signalling::{self, SignalError, TrackerLink};

/// Contacts remembered per swarm, newest first.
const MAX_CONTACTS: usize = 32;
/// Members tried, one after another, when the tracker does not answer.
const CONTACTS_TRIED: usize = 4;
/// How long one signalling socket may take to answer a join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);
/// A remembered certificate is reused for a new node while it runs at least this long more;
/// closer to its expiry the node asks for a fresh one.
const REUSE_MARGIN: u64 = 3600;

/// What the agent keeps of one swarm.
#[derive(Clone, Debug, Default)]
struct Remembered {
    /// The stream URL whose manifest defined the swarm (with the viewer's token).
    stream: Option<String>,
    identity: Option<(Certificate, PublicKey)>,
    /// The viewer's private watermark pattern, when the edge picks variants by token.
    watermark: Option<[u8; 32]>,
    contacts: VecDeque<Contact>,
}

/// The agent's memory of the swarms it joined, shared by its nodes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Memory(Arc<Mutex<HashMap<SwarmId, Remembered>>>);

impl Memory {
    fn with<T>(&self, swarm: SwarmId, f: impl FnOnce(&mut Remembered) -> T) -> T {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(swarm).or_default())
    }

    /// Notes the stream URL that defined `swarm`, unless one is known.
    pub(crate) fn defined_by(&self, swarm: SwarmId, url: &str) {
        self.with(swarm, |r| {
            r.stream.get_or_insert_with(|| url.to_owned());
        });
    }

    /// The certificate in use for `swarm`, if it is valid at `at`.
    pub(crate) fn certificate(&self, swarm: SwarmId, at: UnixTime) -> Option<Certificate> {
        self.with(swarm, |r| {
            (r.identity.as_ref())
                .filter(|(c, _)| c.not_after > at)
                .map(|(c, _)| c.clone())
        })
    }

    /// The viewer's watermark pattern for `swarm`, if the control plane gave one.
    pub(crate) fn watermark(&self, swarm: SwarmId) -> Option<[u8; 32]> {
        self.with(swarm, |r| r.watermark)
    }

    /// Notes a certificate and the authority that issued it.
    pub(crate) fn certified(&self, swarm: SwarmId, cert: Certificate, authority: PublicKey) {
        self.with(swarm, |r| r.identity = Some((cert, authority)));
    }

    /// Notes members' contacts (not `me`'s own).
    pub(crate) fn learn(&self, swarm: SwarmId, me: PeerId, contacts: Vec<Contact>) {
        self.with(swarm, |r| {
            for contact in contacts {
                if PeerId::from(contact.peer) == me || !Contact::valid_url(&contact.url) {
                    continue;
                }
                r.contacts.retain(|c| c.peer != contact.peer);
                r.contacts.push_front(contact);
            }
            r.contacts.truncate(MAX_CONTACTS);
        });
    }

    /// Forgets a member whose contact failed.
    fn forget(&self, swarm: SwarmId, contact: &Contact) {
        self.with(swarm, |r| r.contacts.retain(|c| c != contact));
    }

    /// A few contacts, in random order.
    fn contacts(&self, swarm: SwarmId) -> Vec<Contact> {
        self.with(swarm, |r| {
            let mut contacts: Vec<Contact> = r.contacts.iter().cloned().collect();
            contacts.shuffle(&mut rand::rng());
            contacts.truncate(CONTACTS_TRIED);
            contacts
        })
    }

    /// The stream URL that defined `swarm` (with the viewer's token).
    pub(crate) fn stream(&self, swarm: SwarmId) -> Option<String> {
        self.with(swarm, |r| r.stream.clone())
    }
}

/// How a node reached its swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Through the tracker.
    Tracker,
    /// Through a member's contact, the tracker being away.
    Member,
}

/// What the first contact gave: the welcome (certificate, authority, entry peers), the
/// socket that carries signalling until the overlay does, and whom it came from.
pub(crate) struct Welcomed {
    pub(crate) certificate: Certificate,
    pub(crate) authority: PublicKey,
    pub(crate) peers: Vec<PeerId>,
    pub(crate) link: TrackerLink,
    pub(crate) entry: Entry,
}

/// Where and as whom a node joins.
pub(crate) struct Joining<'a> {
    pub(crate) tracker: &'a str,
    pub(crate) swarm: SwarmId,
    pub(crate) keypair: &'a Keypair,
    pub(crate) crypto: &'a dyn Crypto,
    /// This agent's own contact, advertised to the tracker.
    pub(crate) contact: Option<String>,
    pub(crate) memory: &'a Memory,
    pub(crate) control: &'a ControlClient,
}

/// The certificate to join with: the remembered one while it runs long enough, else a fresh
/// one for the viewer's token, else (control plane away) the remembered one while valid.
async fn certificate(j: &Joining<'_>, now: UnixTime) -> Result<Certificate, SignalError> {
    let long_enough = UnixTime(now.0 + REUSE_MARGIN);
    if let Some(cert) = j.memory.certificate(j.swarm, long_enough) {
        return Ok(cert);
    }
    let Some(stream) = j.memory.stream(j.swarm) else {
        return Err(SignalError::Refused("no stream URL for this swarm".into()));
    };
    let token = token_of(&stream);
    match j.control.session(&stream, token, j.keypair, j.crypto).await {
        Ok(granted) => {
            let cert = granted.certificate;
            j.memory.certified(j.swarm, cert.clone(), granted.authority);
            j.memory.with(j.swarm, |r| r.watermark = granted.watermark);
            Ok(cert)
        }
        Err(e) => {
            tracing::warn!("no certificate from the control plane: {e}");
            (j.memory.certificate(j.swarm, now)).ok_or(SignalError::Refused(e.to_string()))
        }
    }
}

/// Joins through the tracker with a certificate, else through a remembered member. Remembers
/// what the welcome brings.
///
/// # Errors
///
/// No certificate, or the tracker's failure when no member could be reached either.
pub(crate) async fn first_contact(j: &Joining<'_>, now: UnixTime) -> Result<Welcomed, SignalError> {
    let cert = certificate(j, now).await?;
    let possession = prove_possession(j.crypto, j.keypair);
    let key = j.keypair.public();
    let join = ToTracker::join(j.swarm, &key, &possession, j.contact.clone(), Some(&cert));
    let tracker_error = match timed_join(j.tracker, join).await {
        Ok((welcome, link)) => return welcomed(j, welcome, link, Entry::Tracker),
        Err(e) => e,
    };
    for contact in j.memory.contacts(j.swarm) {
        let join = ToTracker::join(j.swarm, &key, &possession, None, Some(&cert));
        match timed_join(&contact.url, join).await {
            Ok((welcome, link)) => return welcomed(j, welcome, link, Entry::Member),
            Err(e) => {
                tracing::debug!("member contact {} failed: {e}", contact.url);
                j.memory.forget(j.swarm, &contact);
            }
        }
    }
    Err(tracker_error)
}

async fn timed_join(url: &str, join: ToTracker) -> Result<(FromTracker, TrackerLink), SignalError> {
    match tokio::time::timeout(JOIN_TIMEOUT, signalling::join(url, join)).await {
        Ok(result) => result,
        Err(_) => Err(SignalError::Connect(format!("{url}: no answer"))),
    }
}

fn welcomed(
    j: &Joining<'_>,
    welcome: FromTracker,
    link: TrackerLink,
    entry: Entry,
) -> Result<Welcomed, SignalError> {
    let FromTracker::Welcome {
        certificate,
        authority,
        peers,
        contacts,
    } = welcome
    else {
        return Err(SignalError::Refused("no welcome".into()));
    };
    let (certificate, authority) = welcome_identity(&certificate, authority)
        .map_err(|e| SignalError::Refused(e.to_string()))?;
    if certificate.public_key != j.keypair.public() {
        return Err(SignalError::Refused("certificate for another key".into()));
    }
    let me = j.keypair.peer_id();
    j.memory.certified(j.swarm, certificate.clone(), authority);
    j.memory.learn(j.swarm, me, contacts);
    Ok(Welcomed {
        certificate,
        authority,
        peers: peers.into_iter().map(PeerId::from).collect(),
        link,
        entry,
    })
}

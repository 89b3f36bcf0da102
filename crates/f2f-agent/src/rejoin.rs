//! Coming back to a swarm while the tracker is away: what the agent remembers of each swarm
//! it joined (its certificate and members' signalling contacts), and the first contact that
//! tries the tracker, then those members.
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
use rand::seq::SliceRandom;

use crate::signalling::{self, SignalError, TrackerLink};

/// Contacts remembered per swarm, newest first.
const MAX_CONTACTS: usize = 32;
/// Members tried, one after another, when the tracker does not answer.
const CONTACTS_TRIED: usize = 4;
/// How long one signalling socket may take to answer a join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(2);

/// What the agent keeps of one swarm.
#[derive(Clone, Debug, Default)]
struct Remembered {
    identity: Option<(Certificate, PublicKey)>,
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

    /// The remembered certificate, if still valid at `now`, and a few contacts in random
    /// order.
    fn recall(&self, swarm: SwarmId, now: UnixTime) -> Option<(Certificate, Vec<Contact>)> {
        self.with(swarm, |r| {
            let (cert, _) = r.identity.clone().filter(|(c, _)| c.not_after > now)?;
            let mut contacts: Vec<Contact> = r.contacts.iter().cloned().collect();
            contacts.shuffle(&mut rand::rng());
            contacts.truncate(CONTACTS_TRIED);
            Some((cert, contacts))
        })
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
}

/// Joins through the tracker, else through a remembered member with the remembered
/// certificate. Remembers what the welcome brings.
///
/// # Errors
///
/// The tracker's failure when no member could be reached either (or none is remembered).
pub(crate) async fn first_contact(j: &Joining<'_>, now: UnixTime) -> Result<Welcomed, SignalError> {
    let possession = prove_possession(j.crypto, j.keypair);
    let key = j.keypair.public();
    let join = ToTracker::join(j.swarm, &key, &possession, j.contact.clone(), None);
    let tracker_error = match timed_join(j.tracker, join).await {
        Ok((welcome, link)) => return welcomed(j, welcome, link, Entry::Tracker),
        Err(e) => e,
    };
    let Some((cert, contacts)) = j.memory.recall(j.swarm, now) else {
        return Err(tracker_error);
    };
    for contact in contacts {
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

//! The peer transport: WebRTC peer connections (str0m, sans-IO) that share one UDP socket per
//! agent, each carrying one ordered, reliable data channel, driven by tokio.
//!
//! str0m is a state machine like our engine: the driver feeds it datagrams and timeouts and
//! carries out what `poll_output` asks. An [`Endpoint`] owns the socket and every connection;
//! a datagram goes to the connection that accepts it (by the nominated address, or by ICE
//! credentials while connecting). Sending never waits: [`Endpoint::send`] refuses a message
//! when the connection's send buffer is full, and [`TransportEvent::Drained`] says when it has
//! room again; that is the back-pressure the engine's `Input::Drained` expects. Throughput
//! depends on the driver: SCTP grows its congestion window only while the sender keeps it
//! full, so everything a connection asks to transmit goes out at once.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;

/// Longest the driver sleeps without feeding str0m a timeout. str0m's next timeout can name a
/// later timer while work is pending: the last message of a transfer sat in the receiver until
/// its ICE timer, about a second later. Polling at least this often bounds that delay.
const MAX_WAIT: Duration = Duration::from_millis(10);

/// Tuning of the endpoint and its connections.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// Bytes a data channel may hold unacknowledged: it caps the data in flight, and so the
    /// throughput at about this much per round trip. Over an emulated 100 Mb/s link with
    /// 40 ms round trips, a warm channel moved a 2 MB segment in 220 ms with 1 MiB (the
    /// serialisation time plus two round trips is 240 ms), and erratically in 1–3 s with
    /// 256 KiB. More is not free: the SCTP stack's work per acknowledgement grows with the
    /// data in flight, and on loopback 16 MiB moved at 38 MiB/s with 128 KiB but 7 MiB/s
    /// with 1 MiB (docs/BENCHMARKS.md). Default 1 MiB.
    pub max_buffered: usize,
    /// After a refused send, [`TransportEvent::Drained`] fires when the connection's
    /// unacknowledged bytes fall to this (or lower, to where the refused message fits). Close
    /// below `max_buffered`, so that a sender refills the window before it runs
    /// dry: at 256 KiB under a 1 MiB window, a warm 2 MB segment over the emulated 40 ms
    /// link took 380 ms instead of 220. Default 768 KiB.
    pub low_water: usize,
    /// Largest message, bytes. Default 256 KiB (a piece and its proof).
    pub max_message: u32,
    /// Kernel send and receive buffer of the UDP socket, bytes (capped by the system's
    /// `net.core.rmem_max`/`wmem_max`). A burst that overflows the receive buffer is lost,
    /// and SCTP recovers a lost tail only after its retransmission timeout (one second at
    /// least): the 212 KB Linux default cost a 16 MiB loopback transfer three such timeouts.
    /// Default 4 MiB.
    pub socket_buffer: usize,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        Self {
            max_buffered: 1 << 20,
            low_water: 768 << 10,
            max_message: 256 << 10,
            socket_buffer: 4 << 20,
        }
    }
}

/// What went wrong on the endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The socket failed.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// The WebRTC state machine refused something (bad SDP, a protocol error).
    #[error("webrtc: {0}")]
    Rtc(#[from] RtcError),
    /// The local address cannot be an ICE candidate.
    #[error("ice: {0}")]
    Ice(#[from] str0m::error::IceError),
    /// No open connection has this id.
    #[error("no open connection {0:?}")]
    UnknownConnection(ConnId),
    /// A message larger than the send window could never be sent.
    #[error("a {len}-byte message does not fit a {max}-byte send window")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// `ChannelConfig::max_buffered`.
        max: usize,
    },
}

/// A connection of an [`Endpoint`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

/// What happened on the endpoint's connections.
#[derive(Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// The connection's data channel is open: messages may be sent.
    Open(ConnId),
    /// A message from the peer.
    Message(ConnId, Vec<u8>),
    /// The connection's unacknowledged bytes fell to `buffered` (at or below the low-water
    /// mark): sending may continue.
    Drained(ConnId, usize),
    /// The connection closed or failed; its id is not used again.
    Closed(ConnId),
}

struct Conn {
    id: ConnId,
    rtc: Rtc,
    channel: Option<ChannelId>,
    open: bool,
    /// Where the peer's datagrams come from (the latest).
    remote: Option<SocketAddr>,
}

/// What a handshake binds to and what eclipse bounds look at, for one open connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Digest of our DTLS certificate fingerprint ([`fingerprint_digest`]).
    pub local: [u8; 32],
    /// Digest of the peer's.
    pub remote: [u8; 32],
    /// The peer's address.
    pub remote_addr: SocketAddr,
}

/// A DTLS fingerprint as 32 bytes: BLAKE3 of the hash function's name (as SDP writes it, e.g.
/// `sha-256`) followed by the fingerprint bytes. Both ends compute it from the same SDP line,
/// whatever hash function the certificate uses.
pub fn fingerprint_digest(hash_func: &str, bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(hash_func.as_bytes());
    h.update(bytes);
    *h.finalize().as_bytes()
}

/// Starts a graceful close; a connection that cannot even do that is dropped.
fn shut(rtc: &mut Rtc) {
    if rtc.close().is_err() {
        rtc.disconnect();
    }
}

/// One UDP socket and the peer connections on it.
pub struct Endpoint {
    socket: UdpSocket,
    /// The address peers reach us at: the socket's own, unless a relay stands in front.
    local: SocketAddr,
    config: ChannelConfig,
    conns: Vec<Conn>,
    next_id: u64,
    events: VecDeque<TransportEvent>,
    buf: Vec<u8>,
}

/// A non-blocking UDP socket bound to `addr` with `buffer` bytes of kernel buffers.
fn udp_socket(addr: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    socket.set_recv_buffer_size(buffer)?;
    socket.set_send_buffer_size(buffer)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

impl Endpoint {
    /// An endpoint on a new UDP socket bound to `addr` (port 0: any), which every connection
    /// offers as its one ICE host candidate.
    ///
    /// # Errors
    ///
    /// The socket cannot be bound.
    pub fn bind(addr: SocketAddr, config: ChannelConfig) -> Result<Self, TransportError> {
        let socket = udp_socket(addr, config.socket_buffer)?;
        let local = socket.local_addr()?;
        Ok(Self::with_socket(socket, local, config))
    }

    /// An endpoint on a new socket bound to `addr` that peers reach through `advertised`, a
    /// forwarding relay (a network emulator in the benchmarks): the candidate offered, and the
    /// destination every datagram is taken to have been sent to.
    ///
    /// # Errors
    ///
    /// The socket cannot be bound.
    pub fn bind_behind(
        addr: SocketAddr,
        advertised: SocketAddr,
        config: ChannelConfig,
    ) -> Result<Self, TransportError> {
        let socket = udp_socket(addr, config.socket_buffer)?;
        Ok(Self::with_socket(socket, advertised, config))
    }

    fn with_socket(socket: UdpSocket, local: SocketAddr, config: ChannelConfig) -> Self {
        Self {
            socket,
            local,
            config,
            conns: Vec::new(),
            next_id: 0,
            events: VecDeque::new(),
            buf: vec![0; 2048],
        }
    }

    /// The address of the UDP socket itself.
    ///
    /// # Errors
    ///
    /// The OS cannot say.
    pub fn socket_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn new_conn(&mut self) -> Result<&mut Conn, TransportError> {
        let mut rtc = Rtc::builder()
            .set_sctp_max_buffered_amount(self.config.max_buffered)
            .set_sctp_max_message_size(self.config.max_message)
            .build(Instant::now());
        // A host candidate for a unicast address is always accepted.
        let _ = rtc.add_local_candidate(Candidate::host(self.local, "udp")?);
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.conns.push(Conn {
            id,
            rtc,
            channel: None,
            open: false,
            remote: None,
        });
        Ok(self.conns.last_mut().expect("just pushed"))
    }

    /// A new outgoing connection: its SDP offer with one data channel, for the signalling path.
    ///
    /// # Errors
    ///
    /// The endpoint's address cannot be a candidate.
    pub fn offer(&mut self) -> Result<(ConnId, SdpOffer, SdpPendingOffer), TransportError> {
        let conn = self.new_conn()?;
        let mut change = conn.rtc.sdp_api();
        conn.channel = Some(change.add_channel("f2f".into()));
        let (offer, pending) = change.apply().expect("a data channel was added");
        Ok((conn.id, offer, pending))
    }

    /// A new incoming connection, from a peer's offer; the answer goes back by signalling.
    ///
    /// # Errors
    ///
    /// The offer cannot be accepted.
    pub fn accept_offer(&mut self, offer: SdpOffer) -> Result<(ConnId, SdpAnswer), TransportError> {
        let conn = self.new_conn()?;
        let answer = conn.rtc.sdp_api().accept_offer(offer)?;
        Ok((conn.id, answer))
    }

    /// The offering side takes the answer.
    ///
    /// # Errors
    ///
    /// Unknown connection, or the answer does not match the offer.
    pub fn accept_answer(
        &mut self,
        id: ConnId,
        pending: SdpPendingOffer,
        answer: SdpAnswer,
    ) -> Result<(), TransportError> {
        let conn = self.conn(id)?;
        Ok(conn.rtc.sdp_api().accept_answer(pending, answer)?)
    }

    fn conn(&mut self, id: ConnId) -> Result<&mut Conn, TransportError> {
        (self.conns.iter_mut())
            .find(|c| c.id == id)
            .ok_or(TransportError::UnknownConnection(id))
    }

    /// Queues one message on a connection; `false` when its send buffer has no room (wait for
    /// [`TransportEvent::Drained`]). The bytes leave at the next [`Self::next_event`].
    ///
    /// # Errors
    ///
    /// The connection is not open, the message is larger than the send window, or str0m
    /// refuses it (larger than the peer takes).
    pub fn send(&mut self, id: ConnId, message: &[u8]) -> Result<bool, TransportError> {
        let (max, low) = (self.config.max_buffered, self.config.low_water);
        if message.len() > max {
            let len = message.len();
            return Err(TransportError::TooLarge { len, max });
        }
        let conn = self.conn(id)?;
        let channel = conn.channel.filter(|_| conn.open);
        let mut channel = channel
            .and_then(|c| conn.rtc.channel(c))
            .ok_or(TransportError::UnknownConnection(id))?;
        if channel.write(true, message)? {
            return Ok(true);
        }
        // `Drained` fires when the buffered bytes cross the threshold downwards: at the latest
        // where this message fits, which they are above now (else it would have been taken).
        channel.set_buffered_amount_low_threshold(low.min(max.saturating_sub(message.len())));
        Ok(false)
    }

    /// The DTLS fingerprints and peer address of an open connection.
    ///
    /// # Errors
    ///
    /// Unknown connection, or not connected yet.
    pub fn session(&mut self, id: ConnId) -> Result<SessionInfo, TransportError> {
        let conn = self.conn(id)?;
        let remote_addr = conn.remote.ok_or(TransportError::UnknownConnection(id))?;
        let api = conn.rtc.direct_api();
        let local = api.local_dtls_fingerprint();
        let local = fingerprint_digest(&local.hash_func, &local.bytes);
        let remote = (api.remote_dtls_fingerprint())
            .map(|f| fingerprint_digest(&f.hash_func, &f.bytes))
            .ok_or(TransportError::UnknownConnection(id))?;
        Ok(SessionInfo {
            local,
            remote,
            remote_addr,
        })
    }

    /// Bytes sent on a connection and not yet acknowledged by the peer.
    ///
    /// # Errors
    ///
    /// Unknown connection.
    pub fn buffered(&mut self, id: ConnId) -> Result<usize, TransportError> {
        let conn = self.conn(id)?;
        let channel = conn.channel.and_then(|c| conn.rtc.channel(c));
        Ok(channel.map_or(0, |mut c| c.buffered_amount()))
    }

    /// Closes a connection gracefully (SCTP shutdown, DTLS close_notify: the peer learns at
    /// once); [`TransportEvent::Closed`] follows.
    pub fn close(&mut self, id: ConnId) {
        if let Ok(conn) = self.conn(id) {
            shut(&mut conn.rtc);
        }
    }

    /// Drives the socket and every connection until something happens.
    ///
    /// # Errors
    ///
    /// The socket fails.
    pub async fn next_event(&mut self) -> Result<TransportEvent, TransportError> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(event);
            }
            let deadline = self.transmit().await?;
            if !self.events.is_empty() {
                continue;
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            let wait = wait.clamp(Duration::from_micros(1), MAX_WAIT);
            let received = tokio::time::timeout(wait, self.socket.recv_from(&mut self.buf)).await;
            let now = Instant::now();
            match received {
                Ok(received) => {
                    let (n, source) = received?;
                    self.receive(n, source, now);
                }
                Err(_) => {
                    for i in 0..self.conns.len() {
                        let result = self.conns[i].rtc.handle_input(Input::Timeout(now));
                        self.check(i, result);
                    }
                }
            }
        }
    }

    /// Hands a datagram to the connection that accepts it; one nobody accepts is dropped.
    fn receive(&mut self, n: usize, source: SocketAddr, now: Instant) {
        let Ok(contents) = self.buf[..n].try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        if let Some(i) = self.conns.iter().position(|c| c.rtc.accepts(&input)) {
            self.conns[i].remote = Some(source);
            let result = self.conns[i].rtc.handle_input(input);
            self.check(i, result);
        }
    }

    /// A connection whose state machine failed is closed.
    fn check(&mut self, i: usize, result: Result<(), RtcError>) {
        if result.is_err() {
            self.conns[i].rtc.disconnect();
        }
    }

    /// Carries out everything every connection asks for now, collecting events and dropping
    /// dead connections; returns the earliest next timeout.
    async fn transmit(&mut self) -> Result<Instant, TransportError> {
        let mut earliest = Instant::now() + Duration::from_secs(3600);
        let mut i = 0;
        while i < self.conns.len() {
            loop {
                let conn = &mut self.conns[i];
                let output = match conn.rtc.poll_output() {
                    Ok(output) => output,
                    Err(_) => {
                        conn.rtc.disconnect();
                        break;
                    }
                };
                match output {
                    Output::Timeout(at) => {
                        earliest = earliest.min(at);
                        break;
                    }
                    Output::Transmit(t) => {
                        self.socket.send_to(&t.contents, t.destination).await?;
                    }
                    Output::Event(event) => self.on_event(i, event),
                }
            }
            if self.conns[i].rtc.is_alive() {
                i += 1;
            } else {
                let conn = self.conns.swap_remove(i);
                self.events.push_back(TransportEvent::Closed(conn.id));
            }
        }
        Ok(earliest)
    }

    fn on_event(&mut self, i: usize, event: Event) {
        let conn = &mut self.conns[i];
        match event {
            Event::ChannelOpen(channel, _) => {
                conn.channel = Some(channel);
                conn.open = true;
                if let Some(mut c) = conn.rtc.channel(channel) {
                    c.set_buffered_amount_low_threshold(self.config.low_water);
                }
                self.events.push_back(TransportEvent::Open(conn.id));
            }
            Event::ChannelData(data) => {
                self.events
                    .push_back(TransportEvent::Message(conn.id, data.data));
            }
            Event::ChannelBufferedAmountLow(channel) => {
                let buffered = conn
                    .rtc
                    .channel(channel)
                    .map_or(0, |mut c| c.buffered_amount());
                self.events
                    .push_back(TransportEvent::Drained(conn.id, buffered));
            }
            Event::ChannelClose(_) => shut(&mut conn.rtc),
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                conn.rtc.disconnect();
            }
            _ => {}
        }
    }
}

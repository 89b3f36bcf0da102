//! The peer transport: one WebRTC peer connection (str0m, sans-IO) on its own UDP socket,
//! carrying one ordered, reliable data channel, driven by tokio.
//!
//! str0m is a state machine like our engine: the driver feeds it datagrams and timeouts and
//! carries out what `poll_output` asks. Throughput depends on the driver: SCTP grows its
//! congestion window only while the sender keeps it full, so [`PeerChannel::send`] hands str0m
//! as much as its send buffer accepts and transmits at once, and waits (back-pressure) only
//! when the buffer is full.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;

/// Longest the driver sleeps without feeding str0m a timeout. str0m's next timeout can name a
/// later timer while work is pending: the last message of a transfer sat in the receiver until
/// its ICE timer, about a second later. Polling at least this often bounds that delay.
const MAX_WAIT: Duration = Duration::from_millis(10);

/// Tuning of one peer connection.
#[derive(Clone, Debug)]
pub struct ChannelConfig {
    /// Bytes the data channel may hold unacknowledged: it caps the data in flight, and so the
    /// throughput at about this much per round trip. Over an emulated 100 Mb/s link with
    /// 40 ms round trips, a warm channel moved a 2 MB segment in 201 ms with 1 MiB (the
    /// serialisation time plus two round trips is 240 ms), and erratically in 1–3 s with
    /// 256 KiB. More is not free: the SCTP stack's work per acknowledgement grows with the
    /// data in flight, and on loopback 16 MiB moved at 38 MiB/s with 128 KiB but 7 MiB/s
    /// with 1 MiB (docs/BENCHMARKS.md). Default 1 MiB.
    pub max_buffered: usize,
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
            max_message: 256 << 10,
            socket_buffer: 4 << 20,
        }
    }
}

/// What went wrong on a peer connection.
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
    /// The peer closed the channel or the connection died.
    #[error("the peer connection closed")]
    Closed,
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

/// One peer connection and its data channel.
pub struct PeerChannel {
    rtc: Rtc,
    socket: UdpSocket,
    /// The address peers reach us at: the socket's own, unless a relay stands in front.
    local: SocketAddr,
    channel: Option<ChannelId>,
    /// Messages that arrived while we were sending.
    inbox: std::collections::VecDeque<Vec<u8>>,
    buf: Vec<u8>,
}

impl PeerChannel {
    /// A connection on a new UDP socket bound to `addr` (port 0: any), offered as the only ICE
    /// host candidate.
    ///
    /// # Errors
    ///
    /// The socket cannot be bound.
    pub fn bind(addr: SocketAddr, config: &ChannelConfig) -> Result<Self, TransportError> {
        let socket = udp_socket(addr, config.socket_buffer)?;
        let local = socket.local_addr()?;
        Self::with_socket(socket, local, config)
    }

    /// A connection on a new socket bound to `addr` that peers reach through `advertised`, a
    /// forwarding relay (a network emulator in the benchmarks): the candidate offered, and the
    /// destination every datagram is taken to have been sent to.
    ///
    /// # Errors
    ///
    /// The socket cannot be bound.
    pub fn bind_behind(
        addr: SocketAddr,
        advertised: SocketAddr,
        config: &ChannelConfig,
    ) -> Result<Self, TransportError> {
        let socket = udp_socket(addr, config.socket_buffer)?;
        Self::with_socket(socket, advertised, config)
    }

    fn with_socket(
        socket: UdpSocket,
        local: SocketAddr,
        config: &ChannelConfig,
    ) -> Result<Self, TransportError> {
        let mut rtc = Rtc::builder()
            .set_sctp_max_buffered_amount(config.max_buffered)
            .set_sctp_max_message_size(config.max_message)
            .build(Instant::now());
        // A host candidate for a unicast address is always accepted.
        let candidate = Candidate::host(local, "udp")?;
        let _ = rtc.add_local_candidate(candidate);
        Ok(Self {
            rtc,
            socket,
            local,
            channel: None,
            inbox: std::collections::VecDeque::new(),
            buf: vec![0; 2048],
        })
    }

    /// The offering side: an SDP offer with one data channel, for the signalling path.
    pub fn offer(&mut self) -> (SdpOffer, SdpPendingOffer) {
        let mut change = self.rtc.sdp_api();
        self.channel = Some(change.add_channel("f2f".into()));
        change.apply().expect("a data channel was added")
    }

    /// The answering side.
    ///
    /// # Errors
    ///
    /// The offer cannot be accepted.
    pub fn accept_offer(&mut self, offer: SdpOffer) -> Result<SdpAnswer, TransportError> {
        Ok(self.rtc.sdp_api().accept_offer(offer)?)
    }

    /// The offering side takes the answer.
    ///
    /// # Errors
    ///
    /// The answer does not match the offer.
    pub fn accept_answer(
        &mut self,
        pending: SdpPendingOffer,
        answer: SdpAnswer,
    ) -> Result<(), TransportError> {
        Ok(self.rtc.sdp_api().accept_answer(pending, answer)?)
    }

    /// Runs the connection until the data channel is open.
    ///
    /// # Errors
    ///
    /// The connection fails.
    pub async fn open(&mut self) -> Result<(), TransportError> {
        while self.open_channel().is_none() {
            self.turn().await?;
        }
        Ok(())
    }

    fn open_channel(&mut self) -> Option<ChannelId> {
        let id = self.channel?;
        self.rtc.channel(id).map(|_| id)
    }

    /// Sends one message, waiting while the channel's send buffer is full.
    ///
    /// # Errors
    ///
    /// The connection fails or closes.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), TransportError> {
        loop {
            let id = self.open_channel().ok_or(TransportError::Closed)?;
            let mut channel = self.rtc.channel(id).ok_or(TransportError::Closed)?;
            if channel.write(true, data)? {
                // Out at once: the congestion window grows only while it is kept full.
                self.transmit().await?;
                return Ok(());
            }
            self.turn().await?;
        }
    }

    /// The next message from the peer.
    ///
    /// # Errors
    ///
    /// The connection fails or closes.
    pub async fn recv(&mut self) -> Result<Vec<u8>, TransportError> {
        loop {
            if let Some(msg) = self.inbox.pop_front() {
                return Ok(msg);
            }
            self.turn().await?;
        }
    }

    /// The address of the UDP socket itself.
    ///
    /// # Panics
    ///
    /// Never: the socket was bound when the connection was made.
    pub fn socket_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// Bytes written but not yet acknowledged by the peer.
    pub fn buffered(&mut self) -> usize {
        let Some(id) = self.open_channel() else {
            return 0;
        };
        self.rtc.channel(id).map_or(0, |mut c| c.buffered_amount())
    }

    /// Carries out everything str0m asks for now; returns when it next wants a timeout.
    async fn transmit(&mut self) -> Result<Instant, TransportError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(t) => {
                    self.socket.send_to(&t.contents, t.destination).await?;
                }
                Output::Event(event) => self.on_event(event)?,
            }
        }
    }

    fn on_event(&mut self, event: Event) -> Result<(), TransportError> {
        match event {
            Event::ChannelOpen(id, _) => self.channel = Some(id),
            Event::ChannelData(data) => self.inbox.push_back(data.data),
            Event::ChannelClose(_) => return Err(TransportError::Closed),
            Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected) => {
                return Err(TransportError::Closed);
            }
            _ => {}
        }
        Ok(())
    }

    /// One turn: transmit what is due, then wait for a datagram or the next timeout.
    async fn turn(&mut self) -> Result<(), TransportError> {
        let deadline = self.transmit().await?;
        let wait = deadline.saturating_duration_since(Instant::now());

        let wait = wait.clamp(Duration::from_micros(1), MAX_WAIT);
        let received =
            tokio::time::timeout(wait, async { self.socket.recv_from(&mut self.buf).await }).await;
        let now = Instant::now();
        match received {
            Ok(received) => {
                let (n, source) = received?;
                // A datagram str0m cannot parse (not STUN, DTLS or SRTP) is dropped.
                if let Ok(contents) = self.buf[..n].try_into() {
                    let input = Receive {
                        proto: Protocol::Udp,
                        source,
                        destination: self.local,
                        contents,
                    };
                    self.rtc.handle_input(Input::Receive(now, input))?;
                }
            }
            Err(_) => self.rtc.handle_input(Input::Timeout(now))?,
        }
        Ok(())
    }
}

//! A TCP proxy that adds a fixed one-way delay in each direction: the link latency this
//! machine's kernel cannot emulate (no `netem`).
//!
//! Every byte read from one side is written to the other `delay` after it arrived, in order,
//! so a request and its answer through the proxy take at least `2 × delay` more than without
//! it. Each direction of a connection buffers at most `buffer` bytes (plus one read of
//! 64 KiB); when the buffer is full the proxy stops reading and TCP's flow control pushes
//! back on the sender, so a connection's throughput is at most `buffer / delay`, as a real
//! link with that bandwidth-delay product. End of stream is passed on (half-close) after the
//! delay too; a reset or error on either side closes both.
//!
//! The proxy runs on a runtime of its own. Between network namespaces, bind the listener in
//! one namespace and start the proxy in the other ([`DelayProxy::start_with`] called from a
//! thread of [`super::netns::Network::run`]): connections are accepted where the listener
//! lives and the upstream connections are opened where the proxy's runtime lives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// Bytes read at most at once.
const READ_CHUNK: usize = 64 << 10;

/// Settings of a [`DelayProxy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DelayConfig {
    /// Added to each direction.
    pub delay: Duration,
    /// Most bytes held per direction of a connection (at least 64 KiB are used).
    pub buffer: usize,
}

impl DelayConfig {
    /// `delay` each way with a 16 MiB buffer per direction (320 MiB/s at 50 ms).
    pub fn new(delay: Duration) -> Self {
        DelayConfig {
            delay,
            buffer: 16 << 20,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    bytes: AtomicU64,
}

/// A running delay proxy; dropping it stops it and closes its connections.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    counters: Arc<Counters>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl DelayProxy {
    /// Listens on `listen` (port 0 picks a free port) and relays each connection to
    /// `upstream` with `delay` added each way.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
    ) -> std::io::Result<DelayProxy> {
        let listener = std::net::TcpListener::bind(listen)?;
        Self::start_with(listener, upstream, DelayConfig::new(delay))
    }

    /// Relays connections accepted on `listener` (which may belong to another network
    /// namespace than the calling thread) to `upstream`, connecting from the calling
    /// thread's namespace.
    pub fn start_with(
        listener: std::net::TcpListener,
        upstream: SocketAddr,
        config: DelayConfig,
    ) -> std::io::Result<DelayProxy> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("delay-proxy")
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let counters = Arc::new(Counters::default());
        let accept_counters = counters.clone();
        runtime.spawn(async move {
            loop {
                let (client, _) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "Delay proxy: accept failed.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                accept_counters.connections.fetch_add(1, Ordering::Relaxed);
                let counters = accept_counters.clone();
                let config = config.clone();
                tokio::spawn(async move {
                    if let Err(err) = relay(client, upstream, &config, &counters).await {
                        tracing::debug!(error = %err, %upstream, "Delay proxy: connection ended.");
                    }
                });
            }
        });
        Ok(DelayProxy {
            addr,
            upstream,
            counters,
            runtime: Some(runtime),
        })
    }

    /// Where the proxy listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it relays to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.counters.connections.load(Ordering::Relaxed)
    }

    /// Bytes relayed so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.counters.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    config: &DelayConfig,
    counters: &Counters,
) -> std::io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    // The first error ends both directions (dropping the halves closes the sockets).
    tokio::try_join!(
        pipe(client_read, server_write, config, counters),
        pipe(server_read, client_write, config, counters),
    )?;
    Ok(())
}

enum Item {
    Data(Bytes, tokio::sync::OwnedSemaphorePermit),
    End,
}

/// Copies `from` to `to`, each chunk `config.delay` after it was read.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    config: &DelayConfig,
    counters: &Counters,
) -> std::io::Result<()> {
    let budget = config.buffer.max(READ_CHUNK);
    let space = Arc::new(Semaphore::new(budget));
    // Unbounded in messages, bounded in bytes by the semaphore.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Item)>();
    let read = async {
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = from.read(&mut buf).await?;
            let arrived = Instant::now();
            if n == 0 {
                let _ = tx.send((arrived, Item::End));
                return Ok::<(), std::io::Error>(());
            }
            let permits = u32::try_from(n).expect("a read is at most 64 KiB");
            let permit = space
                .clone()
                .acquire_many_owned(permits)
                .await
                .expect("the semaphore is never closed");
            if tx
                .send((
                    arrived,
                    Item::Data(Bytes::copy_from_slice(&buf[..n]), permit),
                ))
                .is_err()
            {
                return Ok(());
            }
        }
    };
    let write = async {
        while let Some((arrived, item)) = rx.recv().await {
            tokio::time::sleep_until(arrived + config.delay).await;
            match item {
                Item::Data(bytes, permit) => {
                    to.write_all(&bytes).await?;
                    counters
                        .bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    drop(permit);
                }
                Item::End => {
                    to.shutdown().await?;
                    return Ok(());
                }
            }
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::try_join!(read, write)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::time::Instant;

    fn loopback() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    /// An echo server on a thread: echoes until end of stream, then closes.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind(loopback()).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn bytes_arrive_intact_in_order_and_end_of_stream_is_passed_on() {
        let proxy = DelayProxy::start(loopback(), echo_server(), Duration::from_millis(5)).unwrap();
        let mut stream = TcpStream::connect(proxy.local_addr()).unwrap();
        let data: Vec<u8> = (0..(3 << 20) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let writer = {
            let mut stream = stream.try_clone().unwrap();
            let data = data.clone();
            std::thread::spawn(move || {
                stream.write_all(&data).unwrap();
                stream.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let mut echoed = Vec::new();
        stream.read_to_end(&mut echoed).unwrap();
        writer.join().unwrap();
        assert_eq!(echoed.len(), data.len());
        assert!(echoed == data, "the echo differs from what was sent");
        assert_eq!(proxy.connections(), 1);
        assert_eq!(proxy.bytes(), 2 * data.len() as u64);
    }

    #[test]
    fn a_round_trip_takes_twice_the_delay() {
        let delay = Duration::from_millis(40);
        let proxy = DelayProxy::start(loopback(), echo_server(), delay).unwrap();
        let mut stream = TcpStream::connect(proxy.local_addr()).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut byte = [0u8; 1];
        for round in 0..3u8 {
            let start = Instant::now();
            stream.write_all(&[round]).unwrap();
            stream.read_exact(&mut byte).unwrap();
            let took = start.elapsed();
            assert_eq!(byte[0], round);
            assert!(took >= 2 * delay, "round trip {round} took {took:?}");
        }
    }

    #[test]
    fn a_small_buffer_delivers_everything_in_order_and_late() {
        // 512 KiB through a 64 KiB buffer: every byte arrives, in order, after both delays.
        // (No throughput bound is asserted: the kernel's socket buffers on both sides hold
        // more than the proxy's, so the window is larger than `buffer`.)
        let config = DelayConfig {
            delay: Duration::from_millis(50),
            buffer: 64 << 10,
        };
        let delay = config.delay;
        let listener = TcpListener::bind(loopback()).unwrap();
        let proxy = DelayProxy::start_with(listener, echo_server(), config).unwrap();
        let mut stream = TcpStream::connect(proxy.local_addr()).unwrap();
        let data: Vec<u8> = (0..512u32 << 10).map(|i| (i % 251) as u8).collect();
        let start = Instant::now();
        let writer = {
            let mut stream = stream.try_clone().unwrap();
            let data = data.clone();
            std::thread::spawn(move || {
                stream.write_all(&data).unwrap();
                stream.shutdown(std::net::Shutdown::Write).unwrap();
            })
        };
        let mut echoed = Vec::new();
        stream.read_to_end(&mut echoed).unwrap();
        writer.join().unwrap();
        let took = start.elapsed();
        assert!(echoed == data, "the echo differs from what was sent");
        assert!(took >= 2 * delay, "took only {took:?}");
    }

    #[test]
    fn an_unreachable_upstream_closes_the_client_connection() {
        let dead = {
            let l = TcpListener::bind(loopback()).unwrap();
            l.local_addr().unwrap()
        };
        let proxy = DelayProxy::start(loopback(), dead, Duration::from_millis(1)).unwrap();
        let mut stream = TcpStream::connect(proxy.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 1];
        // End of stream or a reset, but not a timeout.
        match stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("read {n} bytes from a proxy without upstream"),
            Err(e) => assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
        }
    }
}

//! Binding the listener and serving until Ctrl-C, with startup errors a person can act on
//! ("port 8000 on 127.0.0.1 is in use; pass --port").

use crate::state::AppState;
use std::net::SocketAddr;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("port {port} on {host} is in use; pass --port")]
    PortInUse { host: String, port: u16 },
    #[error("cannot listen on {host}:{port}: {source}")]
    Bind {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("{host:?} is not an IP address to listen on (e.g. 127.0.0.1 or 0.0.0.0)")]
    BadHost { host: String },
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("serving HTTP: {0}")]
    Serve(#[source] std::io::Error),
}

/// Binds `host:port` (port 0 picks a free one). Done before the model loads, so a busy port
/// fails at once rather than after minutes of loading.
pub fn bind(host: &str, port: u16) -> Result<std::net::TcpListener, ServerError> {
    let ip: std::net::IpAddr = host.parse().map_err(|_| ServerError::BadHost {
        host: host.to_string(),
    })?;
    std::net::TcpListener::bind(SocketAddr::new(ip, port)).map_err(|source| match source.kind() {
        std::io::ErrorKind::AddrInUse => ServerError::PortInUse {
            host: host.to_string(),
            port,
        },
        _ => ServerError::Bind {
            host: host.to_string(),
            port,
            source,
        },
    })
}

/// Serves the API on `listener` until Ctrl-C (or SIGTERM), then finishes open requests.
pub async fn serve(listener: TcpListener, state: AppState) -> Result<(), ServerError> {
    serve_until(listener, state, shutdown_signal()).await
}

/// Serves until `shutdown` resolves, then finishes open requests.
pub async fn serve_until(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    axum::serve(listener, crate::router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)
}

/// A server running on a thread of its own (`whale demo`, tests): it answers on [`Self::addr`]
/// until [`Self::stop`].
pub struct Background {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl Background {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, finishes open requests and joins the thread.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ServerError::Serve(std::io::Error::other("the server thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Serves on `listener` from a background thread with its own runtime.
pub fn spawn(listener: std::net::TcpListener, state: AppState) -> Result<Background, ServerError> {
    let addr = listener.local_addr().map_err(ServerError::Serve)?;
    listener.set_nonblocking(true).map_err(ServerError::Serve)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("whale-serve".into())
        .spawn(move || {
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).map_err(ServerError::Serve)?;
                serve_until(listener, state, async move {
                    let _ = rx.await;
                })
                .await
            })
        })
        .map_err(ServerError::Runtime)?;
    Ok(Background { addr, stop: Some(tx), thread: Some(thread) })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // Without a signal handler the server runs until killed.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

/// Blocking entry point for the CLI: serves on a listener from [`bind`] until a shutdown
/// signal, on a runtime of its own.
pub fn run(listener: std::net::TcpListener, state: AppState) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    rt.block_on(async {
        listener.set_nonblocking(true).map_err(ServerError::Serve)?;
        let listener = TcpListener::from_std(listener).map_err(ServerError::Serve)?;
        serve(listener, state).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_port_names_host_and_port() {
        let first = bind("127.0.0.1", 0).unwrap();
        let port = first.local_addr().unwrap().port();
        let e = bind("127.0.0.1", port).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("port {port} on 127.0.0.1 is in use; pass --port")
        );
        assert!(matches!(
            bind("localhost:80", 1),
            Err(ServerError::BadHost { .. })
        ));
    }
}

//! What one client may hold of the server, whoever it is: a connection that
//! sends no complete request headers is closed, a request body must arrive
//! by a deadline, and the number of connections served at once is bounded.
//! Without these, slowloris clients (headers a byte at a time) and a body
//! that never ends hold a task, a socket and memory forever.

use std::{
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{ConnectInfo, Request},
    middleware::Next,
    response::Response,
    Router,
};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore, time::Sleep};
use tower::ServiceExt;

use crate::error::AppError;

/// The limits of [`serve`] and [`body_deadline`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a connection may take to send a request's headers (and, on a
    /// kept-alive connection, to start the next request).
    pub header_read: Duration,
    /// How long a request's body may take to arrive, from the headers on.
    pub body: Duration,
    /// Connections served at once; the next waits in the kernel's backlog.
    pub connections: usize,
    /// Once told to stop, how long the requests in flight may take to
    /// finish (`BITGATE_SHUTDOWN_GRACE`); the rest are cut.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    /// 10 s for headers and 30 s for a body (Bitbucket sends both at once;
    /// a 1 MiB form over a slow link takes a few seconds), 4,096 connections
    /// (each costs a task and two buffers, a few KiB while idle).
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body: Duration::from_secs(30),
            connections: 4096,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then stops accepting and lets the requests in flight finish, for up to
/// the grace.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app = app.layer(axum::Extension(limits));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let slots = Arc::new(Semaphore::new(limits.connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = app.clone().map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(remote));
            request.map(Body::new)
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte: a connection
            // that sends nothing at all is closed here instead.
            let mut first = [0u8; 1];
            if !matches!(tokio::time::timeout(limits.header_read, stream.peek(&mut first)).await, Ok(Ok(1..))) {
                return;
            }
            let connection =
                builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(%error, "a connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after BITGATE_SHUTDOWN_GRACE were cut");
    }
    Ok(())
}

/// Gives every request body [`Limits::body`] to arrive: past it, reading
/// the body fails with [`BodyDeadlinePassed`].
pub async fn body_deadline(request: Request, next: Next) -> Response {
    let limit = request.extensions().get::<Limits>().copied().unwrap_or_default().body;
    let request =
        request.map(|body| Body::new(Deadline { inner: body, limit, sleep: Box::pin(tokio::time::sleep(limit)) }));
    next.run(request).await
}

/// Reads a request body whole, at most `limit` bytes: one that came too
/// slowly is 408 `request_timeout`, one too large (or cut off) 413.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, AppError> {
    axum::body::to_bytes(body, limit).await.map_err(|error| {
        if BodyDeadlinePassed::caused(&error) {
            AppError::RequestTimeout
        } else {
            AppError::PayloadTooLarge
        }
    })
}

/// A request body came too slowly.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} seconds", .0.as_secs())]
pub struct BodyDeadlinePassed(pub Duration);

impl BodyDeadlinePassed {
    /// Whether reading a body failed because of its deadline.
    pub fn caused(error: &axum::Error) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(error) = source {
            if error.is::<BodyDeadlinePassed>() {
                return true;
            }
            source = error.source();
        }
        false
    }
}

struct Deadline {
    inner: Body,
    limit: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl HttpBody for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            let passed = BodyDeadlinePassed(self.limit);
            return Poll::Ready(Some(Err(axum::Error::new(passed))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

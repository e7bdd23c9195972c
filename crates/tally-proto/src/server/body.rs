//! A response body that keeps something alive until the response ends (a permit of the
//! in-flight limit, a request's metric), and shows it the trailers, where gRPC puts its status.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use http_body::{Frame, SizeHint};

/// What a response's end releases or records: dropped when the body ends or is dropped.
pub(super) trait OnEnd: Send + Unpin + 'static {
    /// The response's trailers, when it has some.
    fn trailers(&mut self, _trailers: &HeaderMap) {}
}

impl OnEnd for tokio::sync::OwnedSemaphorePermit {}

/// `body`, with `end` dropped once it has been sent (or abandoned).
pub(super) fn with_end<T: OnEnd>(body: Body, end: T) -> Body {
    Body::new(EndWith {
        inner: body,
        end: Some(end),
    })
}

struct EndWith<T> {
    inner: Body,
    end: Option<T>,
}

impl<T: OnEnd> http_body::Body for EndWith<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(trailers), Some(end)) = (frame.trailers_ref(), this.end.as_mut()) {
                    end.trailers(trailers);
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.end = None,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

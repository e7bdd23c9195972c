//! A client-side interceptor that sends a bearer token with every call.

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone, Debug)]
pub struct Bearer {
    value: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Bearer {
    /// `None` sends no header at all.
    pub fn new(token: Option<&str>) -> Self {
        Self {
            value: token.and_then(|t| format!("Bearer {t}").parse().ok()),
        }
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel whose calls carry a bearer token.
pub type AuthorizedChannel =
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

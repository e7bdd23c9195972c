//! What every Tally client of a peer service shares: a lazily connecting channel, and how a
//! peer's failure looks to the caller.

use tonic::Status;

use crate::Rpc;

/// A channel to a peer service that connects on first use and reconnects after failures, so a
/// service can start before its peers do.
pub fn lazy_channel(url: &str) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// A peer's failure as the caller sees it: a transport failure (no ErrorInfo of ours) is the
/// contract's retryable ServiceUnavailable; anything else passes through.
pub fn remote<T>(service: &str, result: Rpc<T>) -> Rpc<T> {
    result.map_err(|status| remote_status(service, status))
}

/// One item of a peer's stream, with its failure mapped as [`remote`] maps a call's.
pub fn remote_item<T>(service: &str, item: Result<T, Status>) -> Result<T, Status> {
    item.map_err(|status| remote_status(service, status))
}

fn remote_status(service: &str, status: Status) -> Status {
    match (crate::status::reason(&status), status.code()) {
        (None, tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled) => {
            tracing::warn!(error = %status, service, "peer call failed");
            crate::status::unavailable(service)
        }
        _ => status,
    }
}

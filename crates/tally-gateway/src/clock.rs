//! The process clock as the `tally.clock.v1` service: GetTime reads it, AdvanceClock moves it when
//! it is manual (`tally serve --manual-clock`) and is refused otherwise.

use std::sync::Arc;

use tally_core::{Clock, Reason};
use tally_proto::clock::v1::{AdvanceClockRequest, ClockTime, GetTimeRequest};
use tally_proto::clock_api::ClockApi;
use tally_proto::convert::{timestamp, utc};
use tally_proto::{Rpc, status};
use tonic::{Request, Response};

/// Serves the clock every service of this process reads.
#[derive(Debug)]
pub struct ProcessClock {
    clock: Arc<dyn Clock>,
}

impl ProcessClock {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }

    fn time(&self) -> ClockTime {
        ClockTime {
            now: Some(timestamp(self.clock.now())),
            manual: self.clock.manual().is_some(),
        }
    }
}

#[tonic::async_trait]
impl ClockApi for ProcessClock {
    async fn get_time(&self, _request: Request<GetTimeRequest>) -> Rpc<ClockTime> {
        Ok(Response::new(self.time()))
    }

    async fn advance_clock(&self, request: Request<AdvanceClockRequest>) -> Rpc<ClockTime> {
        use tally_proto::clock::v1::advance_clock_request::Target;
        let Some(manual) = self.clock.manual() else {
            return Err(status::status(
                Reason::ManualClockDisabled,
                "the clock is real; start tally serve with --manual-clock to move it",
            ));
        };
        let bad_target = |field: &str, description: &str| {
            status::from_rejection(&tally_core::Rejection::field(
                Reason::InvalidProperty,
                field,
                description,
            ))
        };
        let moved = match request.into_inner().target {
            Some(Target::By(by)) => {
                let by = chrono::Duration::seconds(by.seconds)
                    .checked_add(&chrono::Duration::nanoseconds(i64::from(by.nanos)))
                    .ok_or_else(|| bad_target("by", "is out of range"))?;
                manual.advance_by(by)
            }
            Some(Target::To(to)) => {
                let to = utc(Some(&to)).ok_or_else(|| bad_target("to", "is out of range"))?;
                manual.advance_to(to)
            }
            None => return Err(bad_target("target", "set `by` or `to`")),
        };
        moved.map_err(|rejection| status::from_rejection(&rejection))?;
        Ok(Response::new(self.time()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_real_clock_cannot_be_advanced() {
        let clock = ProcessClock::new(Arc::new(tally_core::SystemClock));
        let time = clock
            .get_time(Request::new(GetTimeRequest {}))
            .await
            .expect("read")
            .into_inner();
        assert!(!time.manual);
        let refused = clock
            .advance_clock(Request::new(AdvanceClockRequest { target: None }))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            status::reason(&refused).as_deref(),
            Some("ManualClockDisabled")
        );
    }
}

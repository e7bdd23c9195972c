//! Simulated time (tally.clock.v1): anyone authenticated reads the clock, operators move it
//! forward only, and what depends on business time (reported times, `complete_through`) follows.

use chrono::{Duration, Utc};
use tally_contract_tests::records::{SUB_A, batch, meters, record};
use tally_contract_tests::{Backend, Cluster, Identity, Topology, on_both_backends};
use tally_core::Granularity;
use tally_proto::clock::v1::{AdvanceClockRequest, GetTimeRequest, advance_clock_request::Target};
use tally_proto::convert::timestamp;
use tally_proto::status::reason;

on_both_backends!(
    the_clock_moves_forward_only_and_only_for_operators,
    reported_time_and_complete_through_follow_the_clock,
);

fn by(seconds: i64) -> AdvanceClockRequest {
    AdvanceClockRequest {
        target: Some(Target::By(prost_types::Duration { seconds, nanos: 0 })),
    }
}

async fn the_clock_moves_forward_only_and_only_for_operators(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let start = cluster.now();
    let tenant = cluster.clients_for(&Identity::tenant("c0a1b2c3-d4e5-4f60-8172-839405162738"));

    let read = tenant
        .clock()
        .get_time(GetTimeRequest {})
        .await
        .expect("any authenticated caller reads the clock")
        .into_inner();
    assert_eq!(read.now, Some(timestamp(start)));
    assert!(read.manual);

    let refused = tenant.clock().advance_clock(by(3_600)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    assert_eq!(reason(&refused).as_deref(), Some("RoleRequired"));
    assert_eq!(cluster.now(), start, "a refused call moves nothing");

    let moved = cluster
        .operator()
        .clock()
        .advance_clock(by(90 * 60))
        .await
        .expect("an operator moves the clock")
        .into_inner();
    assert_eq!(moved.now, Some(timestamp(start + Duration::minutes(90))));
    assert_eq!(cluster.now(), start + Duration::minutes(90));

    let to = start + Duration::days(3);
    let moved = cluster
        .operator()
        .clock()
        .advance_clock(AdvanceClockRequest {
            target: Some(Target::To(timestamp(to))),
        })
        .await
        .expect("to a later instant")
        .into_inner();
    assert_eq!(moved.now, Some(timestamp(to)));

    for backwards in [
        AdvanceClockRequest {
            target: Some(Target::To(timestamp(start))),
        },
        by(-1),
    ] {
        let refused = cluster
            .operator()
            .clock()
            .advance_clock(backwards)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert_eq!(
            reason(&refused).as_deref(),
            Some("ClockCannotMoveBackwards")
        );
    }
    let empty = cluster
        .operator()
        .clock()
        .advance_clock(AdvanceClockRequest { target: None })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    assert_eq!(tally_proto::status::fields(&empty), ["target"]);
    assert_eq!(cluster.now(), to);
    cluster.stop().await;
}

async fn reported_time_and_complete_through_follow_the_clock(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let hour = Granularity::Hourly.bucket_start(cluster.now());
    let later = hour + Duration::days(2) + Duration::minutes(5);
    cluster
        .operator()
        .clock()
        .advance_clock(AdvanceClockRequest {
            target: Some(Target::To(timestamp(later))),
        })
        .await
        .expect("advance");
    let posted = cluster
        .ingestion()
        .post_usage(batch(vec![record(
            "clock-1",
            SUB_A,
            meters::BASE_VM_SIZE_HOURS,
            "vm1",
            "2",
            hour,
        )]))
        .await
        .expect("post")
        .into_inner();
    assert_eq!(
        posted.reported_time,
        Some(timestamp(later)),
        "the server stamps the simulated time, not the real one ({})",
        Utc::now()
    );
    // The folder wakes when the clock moves; complete_through reaches the new time.
    let next_hour = Granularity::Hourly.bucket_start(later) + Duration::hours(1);
    cluster
        .operator()
        .clock()
        .advance_clock(AdvanceClockRequest {
            target: Some(Target::To(timestamp(next_hour))),
        })
        .await
        .expect("advance");
    cluster.wait_complete_through(next_hour).await;
    let complete = cluster
        .pipeline_status()
        .await
        .complete_through
        .expect("set");
    assert!(complete.seconds >= next_hour.timestamp());
    cluster.stop().await;
}

//! What every deployment serves: meters, pipeline status, health and reflection.

use std::collections::BTreeSet;

use chrono::Duration;
use tally_contract_tests::records::{SUB_A, batch, record};
use tally_contract_tests::{Backend, Cluster, Topology, on_both_backends};
use tally_core::Granularity;
use tally_proto::status;
use tally_proto::usage::v1::{CreateMeterRequest, ListMetersRequest, Meter};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

on_both_backends!(meters_are_listed_and_custom_meters_accepted);

async fn meters_are_listed_and_custom_meters_accepted(backend: Backend) {
    let cluster = Cluster::start(backend, Topology::InProcess).await;
    let mut admin = cluster.admin();
    let current = admin
        .list_meters(ListMetersRequest {
            include_deprecated: false,
        })
        .await
        .unwrap()
        .into_inner()
        .meters;
    let all = admin
        .list_meters(ListMetersRequest {
            include_deprecated: true,
        })
        .await
        .unwrap()
        .into_inner()
        .meters;
    assert_eq!(all.len(), tally_core::meter::built_in_meters().len());
    assert!(current.len() < all.len() && current.iter().all(|m| !m.deprecated));
    let vm = all
        .iter()
        .find(|m| m.meter_id == tally_core::meter::well_known::BASE_VM_SIZE_HOURS)
        .unwrap();
    assert_eq!(
        (
            vm.name.as_str(),
            vm.unit.as_str(),
            vm.resource_provider.as_str(),
            vm.chargeable
        ),
        ("Base VM Size Hours", "virtual core hours", "Compute", true)
    );

    let custom = Meter {
        name: "Custom Worker Tier Small".into(),
        unit: "hours".into(),
        resource_provider: "App Service".into(),
        chargeable: false,
        ..Default::default()
    };
    let created = admin
        .create_meter(CreateMeterRequest {
            meter: Some(custom.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    // UUIDv5 of "app service/custom worker tier small" in Tally's custom-meter namespace
    // (computed apart, with Python's uuid.uuid5): the same tier has this id on every
    // installation, so it must never change.
    assert_eq!(created.meter_id, "6ae710e5-dfee-59c1-a1bf-6c3cef71a1ea");
    let err = admin
        .create_meter(CreateMeterRequest {
            meter: Some(custom),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
    assert_eq!(status::reason(&err).as_deref(), Some("MeterAlreadyExists"));
    let err = admin
        .create_meter(CreateMeterRequest {
            meter: Some(Meter {
                name: "x".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status::fields(&err), ["meter.unit"]);

    let hour = Granularity::Hourly.bucket_start(cluster.now()) - Duration::hours(1);
    let r = cluster
        .ingestion()
        .post_usage(batch(vec![record(
            "w1",
            SUB_A,
            &created.meter_id.to_uppercase(),
            "site1",
            "1",
            hour,
        )]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    cluster.stop().await;
}

#[tokio::test]
async fn the_gateway_serves_health_and_reflection() {
    let cluster = Cluster::start(Backend::Sqlite, Topology::Remote).await;
    let mut health = HealthClient::new(cluster.channel());
    for service in [
        "",
        "tally.usage.v1.UsageIngestion",
        "tally.usage.v1.ProviderUsage",
        "tally.usage.v1.TenantUsage",
        "tally.usage.v1.UsageAdmin",
    ] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let services = list_services(cluster.channel()).await;
    for expected in [
        "tally.usage.v1.UsageIngestion",
        "tally.usage.v1.ProviderUsage",
        "tally.usage.v1.TenantUsage",
        "tally.usage.v1.UsageAdmin",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            services.contains(expected),
            "{expected} not in {services:?}"
        );
    }
    cluster.stop().await;
}

async fn list_services(channel: tonic::transport::Channel) -> BTreeSet<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

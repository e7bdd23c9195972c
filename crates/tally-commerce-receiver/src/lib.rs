//! `tally commerce-receiver`: the reference upstream commerce endpoint. It serves
//! `tally.commerce.v1.CommerceIngestion` with its own SQLite database: each batch is stored once
//! by id (the same content again is a duplicate, other content `BatchIdConflict`), with running
//! totals per billing subscription x meter x usage day. It checks a bearer token when given one,
//! and fails on purpose when asked: `--fail-rate` at random, and a switch at run time
//! (`CommerceReceiver/SetFailure`) for outages and permanent refusals. `CommerceReceiver` also
//! lists the totals the tests and the demo read.

// Request paths never panic: errors are typed. Tests may unwrap.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use prost::Message as _;
use sha2::Digest as _;
use tally_core::{FieldViolation, Quantity, Reason, Rejection, parse_guid};
use tally_proto::Rpc;
use tally_proto::commerce::v1 as pb;
use tally_proto::commerce_api::{
    CommerceApi, CommerceGrpc, CommerceServices, ReceiverApi, ReceiverGrpc, ReceiverServices,
};
use tally_proto::convert::{timestamp, utc};
use tally_proto::server::{Options, ServeError, Server};
use tally_proto::status;
use tally_store::ReceiverStore;
use tally_store::receiver::{Received, Sums};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The receiver's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// `sqlite://.../receiver.db?mode=rwc` (or PostgreSQL).
    pub database_url: String,
    /// Uploads must carry `authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// Fraction (0..1) of uploads refused with UNAVAILABLE at random.
    pub fail_rate: f64,
    pub server: Options,
}

#[derive(Clone, Copy, Debug, Default)]
struct Failure {
    mode: pb::FailureMode,
    only_day: Option<i64>,
    fail_rate: f64,
}

/// The reference receiver.
pub struct Receiver {
    store: ReceiverStore,
    token: Option<String>,
    failure: Mutex<Failure>,
    duplicates: AtomicU64,
    refused: AtomicU64,
    /// Draws for `--fail-rate`: a counter hashed, so no random-number crate is needed.
    draws: AtomicU64,
}

impl Receiver {
    pub async fn open(config: &Config) -> Result<Receiver, ServeError> {
        if !(0.0..=1.0).contains(&config.fail_rate) {
            return Err(ServeError::Config(format!(
                "--fail-rate {} must be between 0 and 1",
                config.fail_rate
            )));
        }
        Ok(Receiver {
            store: ReceiverStore::open(&config.database_url)
                .await
                .map_err(|e| ServeError::open("the receiver database", e))?,
            token: config.token.clone(),
            failure: Mutex::new(Failure {
                fail_rate: config.fail_rate,
                ..Failure::default()
            }),
            duplicates: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            draws: AtomicU64::new(0),
        })
    }

    fn check_token<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            None => Err(status::status(
                Reason::MissingCredentials,
                "the receiver needs a bearer token",
            )),
            Some(token) if token == expected => Ok(()),
            Some(_) => Err(status::status(
                Reason::InvalidToken,
                "the bearer token is not the receiver's",
            )),
        }
    }

    /// Fails on purpose, if the switch or the fail rate says so.
    fn fail_on_purpose(&self, day: i64) -> Result<(), Status> {
        let failure = *self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let applies = failure.only_day.is_none_or(|only| only == day);
        let refusal = match failure.mode {
            pb::FailureMode::Unavailable if applies => Some(Status::unavailable(
                "the commerce receiver is failing on purpose (outage)",
            )),
            pb::FailureMode::Permanent if applies => Some(status::status(
                Reason::UploadRefused,
                "the commerce receiver refuses this batch on purpose",
            )),
            _ => None,
        };
        let refusal = refusal.or_else(|| {
            let draw = self.draws.fetch_add(1, Ordering::Relaxed);
            let unit = (xxhash_rust::xxh3::xxh3_64(&draw.to_le_bytes()) >> 11) as f64
                / (1u64 << 53) as f64;
            (unit < failure.fail_rate).then(|| {
                Status::unavailable("the commerce receiver failed at random (--fail-rate)")
            })
        });
        match refusal {
            Some(refusal) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(refusal)
            }
            None => Ok(()),
        }
    }

    async fn state(&self) -> Result<pb::ReceiverState, Status> {
        let (batches, records) = self.store.counts().await.map_err(store_error)?;
        let failure = *self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(pb::ReceiverState {
            batches,
            records,
            duplicates: self.duplicates.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            mode: failure.mode as i32,
            only_reported_day: failure
                .only_day
                .and_then(|d| Utc.timestamp_opt(d, 0).single())
                .map(timestamp),
            fail_rate: failure.fail_rate,
        })
    }
}

fn store_error(error: tally_store::StoreError) -> Status {
    match error {
        tally_store::StoreError::Unavailable(_) => status::unavailable("the receiver database"),
        tally_store::StoreError::StorageFull(_) => status::storage_full("the receiver database"),
        e => status::internal(&e),
    }
}

fn midnight(
    field: &str,
    ts: Option<&tally_proto::convert::Timestamp>,
    bad: &mut Vec<FieldViolation>,
) -> i64 {
    match utc(ts) {
        Some(t) if t.timestamp().rem_euclid(86_400) == 0 => t.timestamp(),
        Some(_) => {
            bad.push(FieldViolation::new(field, "must be a UTC midnight"));
            0
        }
        None => {
            bad.push(FieldViolation::new(field, "is required"));
            0
        }
    }
}

/// Checks an upload and sums its records per total key; every bad field is named.
fn validate(r: &pb::UploadUsageRequest) -> Result<(i64, Sums), Rejection> {
    let mut bad = Vec::new();
    if r.batch_id.is_empty() || r.batch_id.len() > 128 {
        bad.push(FieldViolation::new("batch_id", "must be 1..128 characters"));
    }
    if parse_guid(&r.cloud_id).is_none() {
        bad.push(FieldViolation::new("cloud_id", "must be a GUID"));
    }
    let start = midnight(
        "reported_start_time",
        r.reported_start_time.as_ref(),
        &mut bad,
    );
    let end = midnight("reported_end_time", r.reported_end_time.as_ref(), &mut bad);
    if bad.is_empty() && end != start + 86_400 {
        bad.push(FieldViolation::new(
            "reported_end_time",
            "must be the midnight after reported_start_time",
        ));
    }
    if r.batch_count == 0 || r.batch_index >= r.batch_count {
        bad.push(FieldViolation::new(
            "batch_index",
            "must be below batch_count",
        ));
    }
    if r.records.is_empty() || r.records.len() > 1000 {
        bad.push(FieldViolation::new("records", "must hold 1..1000 records"));
    }
    let mut sums = Sums::new();
    for (i, record) in r.records.iter().enumerate() {
        let field = |name: &str| format!("records[{i}].{name}");
        let billing = parse_guid(&record.billing_subscription_id);
        if billing.is_none() {
            bad.push(FieldViolation::new(
                field("billing_subscription_id"),
                "must be a GUID",
            ));
        }
        if parse_guid(&record.subscription_id).is_none() {
            bad.push(FieldViolation::new(
                field("subscription_id"),
                "must be a GUID",
            ));
        }
        let meter = parse_guid(&record.meter_id);
        if meter.is_none() {
            bad.push(FieldViolation::new(field("meter_id"), "must be a GUID"));
        }
        let quantity = Quantity::parse(&record.quantity);
        if let Err(e) = &quantity {
            bad.push(FieldViolation::new(field("quantity"), e.to_string()));
        }
        let usage_day = midnight(
            &field("usage_start_time"),
            record.usage_start_time.as_ref(),
            &mut bad,
        );
        if let (Some(billing), Some(meter), Ok(quantity)) = (billing, meter, quantity) {
            let key = (
                tally_core::format_guid(&billing),
                tally_core::format_guid(&meter),
                usage_day,
            );
            let entry = sums.entry(key).or_insert((Quantity::ZERO, 0));
            entry.0 += quantity;
            entry.1 += 1;
        }
    }
    if bad.is_empty() {
        return Ok((start, sums));
    }
    let message = bad
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Rejection {
        reason: Reason::InvalidProperty,
        message,
        violations: bad,
    })
}

#[tonic::async_trait]
impl CommerceApi for Receiver {
    async fn upload_usage(
        &self,
        request: Request<pb::UploadUsageRequest>,
    ) -> Rpc<pb::UploadUsageResponse> {
        self.check_token(&request)?;
        let upload = request.into_inner();
        let (day, sums) = validate(&upload).map_err(|r| status::from_rejection(&r))?;
        self.fail_on_purpose(day)?;
        // Maps are ordered (btree), so equal content always encodes to equal bytes.
        let digest = format!("{:x}", sha2::Sha256::digest(upload.encode_to_vec()));
        let records = upload.records.len() as u32;
        let now = tally_core::Clock::now(&tally_core::SystemClock).timestamp();
        match self
            .store
            .receive(&upload.batch_id, &digest, records, day, now, &sums)
            .await
            .map_err(store_error)?
        {
            Received::Stored => Ok(Response::new(pb::UploadUsageResponse {
                accepted: records,
                duplicate: false,
            })),
            Received::Duplicate => {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
                Ok(Response::new(pb::UploadUsageResponse {
                    accepted: 0,
                    duplicate: true,
                }))
            }
            Received::Conflict => Err(status::status(
                Reason::BatchIdConflict,
                format!(
                    "batch {:?} was received before with different content",
                    upload.batch_id
                ),
            )),
        }
    }
}

#[tonic::async_trait]
impl ReceiverApi for Receiver {
    async fn list_totals(
        &self,
        request: Request<pb::ListTotalsRequest>,
    ) -> Rpc<pb::ListTotalsResponse> {
        self.check_token(&request)?;
        let billing = request.into_inner().billing_subscription_id;
        let filter = if billing.is_empty() {
            None
        } else {
            Some(
                parse_guid(&billing)
                    .map(|g| tally_core::format_guid(&g))
                    .ok_or_else(|| {
                        status::from_rejection(&Rejection::field(
                            Reason::InvalidProperty,
                            "billing_subscription_id",
                            "must be a GUID",
                        ))
                    })?,
            )
        };
        let totals = self
            .store
            .totals(filter.as_deref())
            .await
            .map_err(store_error)?;
        Ok(Response::new(pb::ListTotalsResponse {
            totals: totals
                .into_iter()
                .map(|t| pb::UsageTotal {
                    billing_subscription_id: t.billing_subscription_id,
                    meter_id: t.meter_id,
                    usage_day: Utc.timestamp_opt(t.usage_day, 0).single().map(timestamp),
                    quantity: t.quantity.to_string(),
                    records: t.records,
                })
                .collect(),
        }))
    }

    async fn set_failure(&self, request: Request<pb::SetFailureRequest>) -> Rpc<pb::ReceiverState> {
        self.check_token(&request)?;
        let r = request.into_inner();
        let mode = pb::FailureMode::try_from(r.mode).map_err(|_| {
            status::from_rejection(&Rejection::field(
                Reason::InvalidProperty,
                "mode",
                "unknown failure mode",
            ))
        })?;
        if !(0.0..=1.0).contains(&r.fail_rate) {
            return Err(status::from_rejection(&Rejection::field(
                Reason::InvalidProperty,
                "fail_rate",
                "must be between 0 and 1",
            )));
        }
        let only_day = match r.only_reported_day.as_ref() {
            None => None,
            Some(ts) => Some(utc(Some(ts)).map(|t| t.timestamp()).ok_or_else(|| {
                status::from_rejection(&Rejection::field(
                    Reason::InvalidProperty,
                    "only_reported_day",
                    "is not a valid timestamp",
                ))
            })?),
        };
        *self
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Failure {
            mode,
            only_day,
            fail_rate: r.fail_rate,
        };
        tracing::info!(
            ?mode,
            ?only_day,
            fail_rate = r.fail_rate,
            "failure switch set"
        );
        Ok(Response::new(self.state().await?))
    }

    async fn get_receiver_state(
        &self,
        request: Request<pb::GetReceiverStateRequest>,
    ) -> Rpc<pb::ReceiverState> {
        self.check_token(&request)?;
        Ok(Response::new(self.state().await?))
    }
}

#[tonic::async_trait]
impl tally_proto::server::Readiness for Receiver {
    async fn check(&self) -> Result<(), String> {
        self.store.ping().await.map_err(|e| e.to_string())
    }
}

/// Opens the receiver's database and serves it on `listener` until `shutdown` completes.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let receiver = Arc::new(Receiver::open(&config).await?);
    serve_receiver(receiver, listener, shutdown, &config.server).await
}

/// Serves an already opened receiver.
pub async fn serve_receiver(
    receiver: Arc<Receiver>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: &Options,
) -> Result<(), ServeError> {
    let names: Vec<&'static str> = CommerceServices::<dyn CommerceApi>::NAMES
        .iter()
        .chain(ReceiverServices::<dyn ReceiverApi>::NAMES)
        .copied()
        .collect();
    let mut server = Server::new("tally-commerce-receiver", &names, receiver.clone());
    CommerceGrpc::services(receiver.clone()).add_to(server.routes());
    ReceiverGrpc::services(receiver).add_to(server.routes());
    server.serve(listener, shutdown, options).await
}

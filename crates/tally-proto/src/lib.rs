//! Tally's protobuf contracts, and everything that is about the wire rather than the domain:
//! the generated messages, servers and clients; the descriptor set for reflection; the service
//! traits that both the in-process implementations and the gRPC clients implement (all declared
//! the same way, by [`service_api`]); conversions between wire and domain types; and how domain
//! errors become `tonic::Status`.
//!
//! Architecture invariant: this is the only crate that defines wire types. Services convert at
//! their edges and keep prost types out of `tally-core` and `tally-store`.

pub mod bearer;
pub mod billing_api;
pub mod client;
pub mod clock_api;
pub mod convert;
pub mod metrics;
pub mod registration_api;
pub mod server;
pub mod service_api;
pub mod status;
pub mod usage_api;

#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod usage {
    pub mod v1 {
        tonic::include_proto!("tally.usage.v1");
    }
}

#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod registration {
    pub mod v1 {
        tonic::include_proto!("tally.registration.v1");
    }
}

#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod clock {
    pub mod v1 {
        tonic::include_proto!("tally.clock.v1");
    }
}

#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod billing {
    pub mod v1 {
        tonic::include_proto!("tally.billing.v1");
    }
}

/// What every RPC of a service trait returns.
pub type Rpc<T> = Result<tonic::Response<T>, tonic::Status>;

/// The descriptor set of every Tally contract, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tally_descriptor");

/// The largest message a Tally service decodes. Batches above `status::MAX_BATCH_BYTES` are
/// refused with `BatchTooLarge`; this outer limit only stops a client from exhausting memory.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

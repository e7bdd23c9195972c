//! The one way a Tally contract becomes Rust: [`service_api!`] declares, from one list of RPCs,
//! the object-safe trait that in-process implementations and gateways call, its gRPC client, its
//! forwarding through `Arc`, and the tonic services that serve any implementation. The four
//! can never disagree, and an in-process call pays no serialization.
//!
//! Unary RPCs are written `method(Request) -> Response;`, server-streaming ones
//! `stream method(Request) -> Item as StreamType;` (the trait returns a [`BoxStream`]). An RPC the
//! trait leaves out (such as a bidirectional stream composed of unary calls) goes in the service's
//! `#[extra] { .. }` block, which is pasted into its tonic impl.

use std::pin::Pin;

/// A boxed stream of messages, as a server-streaming RPC of a service trait returns it.
pub type BoxStream<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

/// Declares a contract's trait, client and tonic services; see the module documentation.
macro_rules! service_api {
    (
        $(#[$trait_doc:meta])*
        trait $api:ident;
        $(#[$client_doc:meta])*
        client $client:ident($peer:literal);
        $(#[$grpc_doc:meta])*
        server $grpc:ident, $services:ident;
        $(
            $service:ident / $field:ident ($stub:ty, $server:ident, $service_name:path) {
                $( $(#[$kind:ident])? $method:ident ( $req:ty ) -> $resp:ty $(as $stream:ident)? ; )*
            } $( #[extra] { $($extra:tt)* } )?
        )*
    ) => {
        $(#[$trait_doc])*
        #[tonic::async_trait]
        pub trait $api: Send + Sync + 'static {
            $( $(
                async fn $method(&self, request: tonic::Request<$req>)
                    -> $crate::Rpc<service_api!(@response $(#[$kind])? $resp)>;
            )* )*
        }

        $(#[$client_doc])*
        #[derive(Clone, Debug)]
        pub struct $client {
            $( $field: $stub, )*
        }

        impl $client {
            /// A client that connects on first use and reconnects after failures, so a service
            /// can start before its peers do.
            pub fn connect_lazy(url: &str) -> Result<Self, tonic::transport::Error> {
                Ok(Self::new($crate::client::lazy_channel(url)?))
            }

            pub fn new(channel: tonic::transport::Channel) -> Self {
                Self {
                    $(
                        $field: <$stub>::new(channel.clone())
                            .max_decoding_message_size($crate::MAX_MESSAGE_BYTES)
                            .max_encoding_message_size($crate::MAX_MESSAGE_BYTES),
                    )*
                }
            }
        }

        #[tonic::async_trait]
        impl $api for $client {
            $( $(
                async fn $method(&self, request: tonic::Request<$req>)
                    -> $crate::Rpc<service_api!(@response $(#[$kind])? $resp)> {
                    service_api!(@call $(#[$kind])? $peer, self.$field.clone().$method(request).await)
                }
            )* )*
        }

        #[tonic::async_trait]
        impl<T: $api + ?Sized> $api for std::sync::Arc<T> {
            $( $(
                async fn $method(&self, request: tonic::Request<$req>)
                    -> $crate::Rpc<service_api!(@response $(#[$kind])? $resp)> {
                    (**self).$method(request).await
                }
            )* )*
        }

        $(#[$grpc_doc])*
        pub struct $grpc<A: ?Sized> {
            api: std::sync::Arc<A>,
        }

        impl<A: ?Sized> Clone for $grpc<A> {
            fn clone(&self) -> Self {
                Self { api: self.api.clone() }
            }
        }

        /// The contract's tonic services, ready to mount.
        pub struct $services<A: $api + ?Sized> {
            $( pub $field: $server<$grpc<A>>, )*
        }

        impl<A: $api + ?Sized> $grpc<A> {
            pub fn services(api: std::sync::Arc<A>) -> $services<A> {
                let grpc = $grpc { api };
                $services {
                    $(
                        $field: $server::new(grpc.clone())
                            .max_decoding_message_size($crate::MAX_MESSAGE_BYTES)
                            .max_encoding_message_size($crate::MAX_MESSAGE_BYTES),
                    )*
                }
            }
        }

        impl<A: $api + ?Sized> $services<A> {
            /// The fully qualified names of these services, for health reporting.
            pub const NAMES: &'static [&'static str] = &[ $( $service_name, )* ];

            /// Adds every service of the contract to `routes`.
            pub fn add_to(self, routes: &mut tonic::service::RoutesBuilder) {
                $( routes.add_service(self.$field); )*
            }
        }

        $(
            #[tonic::async_trait]
            impl<A: $api + ?Sized> $service for $grpc<A> {
                // Written out here, not by a nested macro: async_trait must see the methods.
                $(
                    $( type $stream = $crate::service_api::BoxStream<$resp>; )?
                    async fn $method(&self, request: tonic::Request<$req>)
                        -> $crate::Rpc<service_api!(@response $(#[$kind])? $resp)> {
                        self.api.$method(request).await
                    }
                )*
                $( $($extra)* )?
            }
        )*
    };

    (@response $resp:ty) => { $resp };
    (@response #[stream] $resp:ty) => { $crate::service_api::BoxStream<$resp> };

    (@call $peer:literal, $result:expr) => { $crate::client::remote($peer, $result) };
    (@call #[stream] $peer:literal, $result:expr) => {
        $crate::client::remote($peer, $result).map(|response| {
            response.map(|stream| {
                Box::pin(futures::StreamExt::map(stream, move |item| {
                    $crate::client::remote_item($peer, item)
                })) as $crate::service_api::BoxStream<_>
            })
        })
    };
}

pub(crate) use service_api;

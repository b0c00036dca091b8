//! The RFC 8555 client side: wire types, JWS, and the HTTP client.

pub mod client;
pub mod jws;
mod pace;
pub mod types;

//! Validation: does the destination hold what the source, mapped and
//! transformed, says it should?

pub mod digest;

pub use digest::TableDigest;

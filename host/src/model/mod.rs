//! The data every layer shares and that depends on nothing else in the
//! crate: the row model and how untrusted text is made safe to show.

pub mod convert;
pub mod cursor;
pub mod text;
pub mod value;

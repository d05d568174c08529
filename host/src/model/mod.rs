//! The data every layer shares and that depends on nothing else in the
//! crate: the row model, the schema model (what a database declares around
//! its rows), and how untrusted text is made safe to show.

pub mod convert;
pub mod cursor;
pub mod schema;
pub mod text;
pub mod value;

//! Business rules and statistical models as plain Rust, free of Arrow types, so
//! they can be read, unit-tested and property-tested on their own.
pub mod btyd;
pub mod lifecycle;
pub mod rfm;
pub mod tier;

//! The SQL function reference in the README, generated from each function's
//! DataFusion `Documentation`.

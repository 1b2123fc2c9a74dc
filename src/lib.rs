//! crmdb

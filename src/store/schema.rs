//! The canonical CRM tables: one source of truth for names, types, nullability,
//! keys and allowed values. Ingest, the store's schema check, the generator and
//! the docs all read from here.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Precision and scale of every money column: DECIMAL(18,2).
pub const MONEY_PRECISION: u8 = 18;
/// Scale of every money column.
pub const MONEY_SCALE: i8 = 2;

/// Logical column types of the canonical tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// 64-bit integer identifier or count (`bigint`).
    Int64,
    /// 32-bit integer (`integer`).
    Int32,
    /// UTF-8 text.
    Text,
    /// DECIMAL(18,2) money.
    Money,
    /// 64-bit float.
    Float64,
    /// true / false.
    Boolean,
    /// Calendar date.
    Date,
    /// Timestamp in microseconds, UTC.
    Timestamp,
}

impl ColumnType {
    /// The Arrow type this column has in Delta and in query results.
    pub fn arrow_type(self) -> DataType {
        match self {
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Text => DataType::Utf8,
            ColumnType::Money => DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE),
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }

    /// The name used in error messages and docs (PostgreSQL spelling).
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Int64 => "bigint",
            ColumnType::Int32 => "integer",
            ColumnType::Text => "text",
            ColumnType::Money => "numeric(18,2)",
            ColumnType::Float64 => "double precision",
            ColumnType::Boolean => "boolean",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamptz",
        }
    }
}

/// One column of a canonical table.
#[derive(Debug, Clone, Copy)]
pub struct ColumnDef {
    /// Column name (the contract).
    pub name: &'static str,
    /// Logical type.
    pub ty: ColumnType,
    /// Whether NULL (or an empty CSV field, or a missing column) is allowed.
    pub nullable: bool,
    /// For text columns with a closed vocabulary: the allowed values.
    pub allowed: Option<&'static [&'static str]>,
    /// One line for the docs.
    pub doc: &'static str,
}

/// How a load treats rows whose key is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPolicy {
    /// Rows whose key is already stored are skipped and counted as duplicates.
    Append,
    /// A row replaces the stored row with the same key when its `updated_at` is newer.
    UpsertNewer {
        /// The column compared to decide which row is newer.
        version_column: &'static str,
    },
}

/// A canonical table.
#[derive(Debug, Clone, Copy)]
pub struct TableDef {
    /// Table name (the contract).
    pub name: &'static str,
    /// Columns in storage order.
    pub columns: &'static [ColumnDef],
    /// The key columns.
    pub key: &'static [&'static str],
    /// What to do with rows whose key is already stored.
    pub key_policy: KeyPolicy,
    /// The column every load's rows are sorted by before they are written
    /// (an integer column), so that row-group and page statistics narrow a
    /// lookup of one value (say, one customer) to a few pages.
    pub cluster_by: Option<&'static str>,
    /// One line for the docs.
    pub doc: &'static str,
}

impl TableDef {
    /// The Arrow schema of the table.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(c.name, c.ty.arrow_type(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    /// Look up a column by name.
    pub fn column(&self, name: &str) -> Option<&'static ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const fn col(name: &'static str, ty: ColumnType, nullable: bool, doc: &'static str) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        nullable,
        allowed: None,
        doc,
    }
}

const fn enum_col(
    name: &'static str,
    nullable: bool,
    allowed: &'static [&'static str],
    doc: &'static str,
) -> ColumnDef {
    ColumnDef {
        name,
        ty: ColumnType::Text,
        nullable,
        allowed: Some(allowed),
        doc,
    }
}

use ColumnType::*;

/// Allowed values of `orders.status`.
pub const ORDER_STATUSES: &[&str] = &["completed", "returned", "cancelled"];
/// Allowed values of `interactions.kind`.
pub const INTERACTION_KINDS: &[&str] = &[
    "view",
    "click",
    "add_to_cart",
    "share",
    "referral",
    "review",
    "consult",
    "complaint",
    "survey",
    "email_open",
    "app_open",
    "visit",
];
/// Allowed values of `customers.gender`.
pub const GENDERS: &[&str] = &["F", "M", "X", "U"];
/// Allowed values of `customers.member_tier`.
pub const MEMBER_TIERS: &[&str] = &["regular", "silver", "gold", "platinum"];

/// `customers`: one row per customer; upserted by `updated_at`.
pub const CUSTOMERS: TableDef = TableDef {
    name: "customers",
    columns: &[
        col("customer_id", Int64, false, "customer key"),
        col("name", Text, true, "full name (personal data)"),
        col("phone", Text, true, "phone number (personal data)"),
        col("email", Text, true, "email address (personal data)"),
        enum_col("gender", true, GENDERS, "F, M, X or U (unknown)"),
        col("birth_date", Date, true, "date of birth (personal data)"),
        col("city", Text, true, "city of residence"),
        col(
            "signup_at",
            Timestamp,
            false,
            "when the customer registered (UTC)",
        ),
        col(
            "signup_channel",
            Text,
            true,
            "channel of registration (web, app, store, ...)",
        ),
        enum_col(
            "member_tier",
            true,
            MEMBER_TIERS,
            "loyalty tier as recorded by the source system",
        ),
        col(
            "marketing_consent",
            Boolean,
            false,
            "whether marketing contact is allowed",
        ),
        col(
            "updated_at",
            Timestamp,
            false,
            "last change in the source system (UTC); newer rows win",
        ),
    ],
    key: &["customer_id"],
    key_policy: KeyPolicy::UpsertNewer {
        version_column: "updated_at",
    },
    cluster_by: Some("customer_id"),
    doc: "one row per customer (personal data masked for the viewer role)",
};

/// `orders`: one row per order.
pub const ORDERS: TableDef = TableDef {
    name: "orders",
    columns: &[
        col("order_id", Int64, false, "order key"),
        col("customer_id", Int64, false, "customer who placed the order"),
        col(
            "order_ts",
            Timestamp,
            false,
            "when the order was placed (UTC)",
        ),
        col(
            "channel",
            Text,
            true,
            "sales channel (web, app, store, marketplace, ...)",
        ),
        col("store_id", Text, true, "store or shop identifier"),
        col("amount", Money, false, "order value after discount"),
        col("discount", Money, true, "discount granted"),
        col(
            "promotion_id",
            Int64,
            true,
            "promotion redeemed with the order",
        ),
        enum_col(
            "status",
            false,
            ORDER_STATUSES,
            "completed, returned or cancelled",
        ),
    ],
    key: &["order_id"],
    key_policy: KeyPolicy::Append,
    cluster_by: Some("customer_id"),
    doc: "one row per order; only completed orders count as purchases",
};

/// `order_items`: one row per order line.
pub const ORDER_ITEMS: TableDef = TableDef {
    name: "order_items",
    columns: &[
        col("order_id", Int64, false, "order the line belongs to"),
        col("line_no", Int32, false, "line number within the order"),
        col("sku", Text, false, "stock keeping unit"),
        col("category", Text, true, "product category"),
        col("quantity", Int32, false, "units"),
        col("unit_price", Money, false, "price per unit"),
    ],
    key: &["order_id", "line_no"],
    key_policy: KeyPolicy::Append,
    cluster_by: Some("order_id"),
    doc: "one row per order line",
};

/// `interactions`: one row per touchpoint.
pub const INTERACTIONS: TableDef = TableDef {
    name: "interactions",
    columns: &[
        col("interaction_id", Int64, false, "interaction key"),
        col("customer_id", Int64, false, "customer"),
        col("ts", Timestamp, false, "when it happened (UTC)"),
        col(
            "channel",
            Text,
            true,
            "web, app, email, store, social, call_center, ...",
        ),
        enum_col(
            "kind",
            false,
            INTERACTION_KINDS,
            "view, click, add_to_cart, share, referral, review, consult, complaint, survey, ...",
        ),
        col(
            "ref",
            Text,
            true,
            "what it refers to (sku, campaign, referred customer, ...)",
        ),
        col(
            "value",
            Float64,
            true,
            "a score or amount; 0-10 for surveys (NPS)",
        ),
    ],
    key: &["interaction_id"],
    key_policy: KeyPolicy::Append,
    cluster_by: Some("customer_id"),
    doc: "one row per interaction (views, clicks, shares, referrals, surveys, ...)",
};

/// `promotions`: one row per promotion.
pub const PROMOTIONS: TableDef = TableDef {
    name: "promotions",
    columns: &[
        col("promotion_id", Int64, false, "promotion key"),
        col("name", Text, false, "display name"),
        col(
            "kind",
            Text,
            true,
            "coupon, discount, bundle, free_shipping, points, ...",
        ),
        col(
            "channel",
            Text,
            true,
            "channel the promotion was sent through",
        ),
        col("start_ts", Timestamp, false, "start (UTC)"),
        col("end_ts", Timestamp, false, "end (UTC)"),
        col("cost", Money, true, "total cost of running the promotion"),
        col(
            "target_segment",
            Text,
            true,
            "segment the promotion was aimed at",
        ),
    ],
    key: &["promotion_id"],
    key_policy: KeyPolicy::Append,
    cluster_by: None,
    doc: "one row per promotion or campaign",
};

/// `promotion_exposures`: who was sent (or held out of) each promotion.
pub const PROMOTION_EXPOSURES: TableDef = TableDef {
    name: "promotion_exposures",
    columns: &[
        col("promotion_id", Int64, false, "promotion"),
        col("customer_id", Int64, false, "customer"),
        col(
            "exposed_at",
            Timestamp,
            false,
            "when the customer was exposed (or would have been, for the control group)",
        ),
        col("channel", Text, true, "channel of the exposure"),
        col(
            "is_control",
            Boolean,
            false,
            "true for the random hold-out group used to measure uplift",
        ),
    ],
    key: &["promotion_id", "customer_id"],
    key_policy: KeyPolicy::Append,
    cluster_by: Some("customer_id"),
    doc: "one row per customer targeted by a promotion, control group included",
};

/// Every canonical table, in load order (parents before children).
pub const TABLES: &[TableDef] = &[
    CUSTOMERS,
    ORDERS,
    ORDER_ITEMS,
    INTERACTIONS,
    PROMOTIONS,
    PROMOTION_EXPOSURES,
];

/// Look up a canonical table by name.
pub fn table(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().find(|t| t.name == name)
}

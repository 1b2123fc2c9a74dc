//! PostgreSQL functions whose answer depends on the connection, registered in
//! every connection's session: `version()`, `current_setting(name [, missing_ok])`,
//! `session_user` / `current_user` (the authenticated user, not datafusion-pg-catalog's
//! constant `postgres`).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;

/// The PostgreSQL version crmdb speaks, as reported to clients.
pub const PG_VERSION: &str = "16.6";
/// `server_version` (startup parameter and `SHOW server_version`).
pub const SERVER_VERSION: &str = concat!("16.6 (crmdb ", env!("CARGO_PKG_VERSION"), ")");
/// `server_version_num`.
pub const SERVER_VERSION_NUM: &str = "160006";

/// `SELECT version()`: parses as PostgreSQL 16 in SQLAlchemy, pgjdbc, Npgsql.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {PG_VERSION} (crmdb {}) on {}-{}, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// What one connection knows about itself, shared with its functions.
#[derive(Debug, Default)]
pub struct SessionInfo {
    /// The authenticated user (empty until startup has finished).
    pub user: RwLock<String>,
    /// PostgreSQL-style settings visible through `current_setting()` and `SHOW`.
    pub settings: RwLock<HashMap<String, String>>,
}

impl SessionInfo {
    /// A fresh info block with PostgreSQL's defaults.
    pub fn new() -> Arc<SessionInfo> {
        let mut settings = HashMap::new();
        for (k, v) in PG_DEFAULTS {
            settings.insert((*k).to_string(), (*v).to_string());
        }
        settings.insert("server_version".into(), SERVER_VERSION.into());
        Arc::new(SessionInfo {
            user: RwLock::new(String::new()),
            settings: RwLock::new(settings),
        })
    }

    /// The current user name.
    pub fn user(&self) -> String {
        self.user.read().map(|u| u.clone()).unwrap_or_default()
    }

    /// A setting's value, if known.
    pub fn setting(&self, name: &str) -> Option<String> {
        self.settings
            .read()
            .ok()?
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    /// Change a setting.
    pub fn set(&self, name: &str, value: &str) {
        if let Ok(mut s) = self.settings.write() {
            s.insert(name.to_ascii_lowercase(), value.to_string());
        }
    }
}

/// PostgreSQL settings a client may read or `SET` (value = the default shown).
pub const PG_DEFAULTS: &[(&str, &str)] = &[
    ("application_name", ""),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
    ("client_min_messages", "notice"),
    ("datestyle", "ISO, MDY"),
    ("default_transaction_isolation", "read committed"),
    ("default_transaction_read_only", "off"),
    ("extra_float_digits", "1"),
    ("idle_in_transaction_session_timeout", "0"),
    ("integer_datetimes", "on"),
    ("intervalstyle", "postgres"),
    ("is_superuser", "off"),
    ("jit", "off"),
    ("lc_collate", "C.UTF-8"),
    ("lc_ctype", "C.UTF-8"),
    ("lc_messages", "C.UTF-8"),
    ("lc_monetary", "C.UTF-8"),
    ("lc_numeric", "C.UTF-8"),
    ("lc_time", "C.UTF-8"),
    ("lock_timeout", "0"),
    ("max_identifier_length", "63"),
    ("search_path", "\"$user\", public"),
    ("server_encoding", "UTF8"),
    ("server_version_num", SERVER_VERSION_NUM),
    ("standard_conforming_strings", "on"),
    ("statement_timeout", "0"),
    ("timezone", "UTC"),
    ("transaction_isolation", "read committed"),
    ("transaction_read_only", "off"),
    ("crm.as_of", ""),
];

/// Register this connection's functions into its session (after pg_catalog's,
/// so these win).
pub fn register(ctx: &SessionContext, info: &Arc<SessionInfo>) {
    ctx.register_udf(ScalarUDF::from(VersionFunc::new()));
    ctx.register_udf(ScalarUDF::from(CurrentSettingFunc::new(info.clone())));
    ctx.register_udf(ScalarUDF::from(ToRegtypeFunc::new()));
    for name in ["session_user", "current_user", "user", "current_role"] {
        ctx.register_udf(ScalarUDF::from(UserFunc::new(name, info.clone())));
    }
    ctx.register_udf(function_is_visible());
    ctx.register_udf(pg_data_type());
    super::srf::register(ctx);
}

/// `pg_get_indexdef(oid [, column, pretty])` over crmdb's primary-key indexes
/// (psql `\d`, SQLAlchemy `get_indexes`, DBeaver).
pub fn get_indexdef(indexes: Arc<super::catalog::IndexDefs>) -> ScalarUDF {
    ScalarUDF::from(GetIndexdefFunc {
        indexes,
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int32]),
                TypeSignature::Exact(vec![DataType::Int32, DataType::Int32]),
                TypeSignature::Exact(vec![DataType::Int32, DataType::Int64]),
                TypeSignature::Exact(vec![DataType::Int32, DataType::Int32, DataType::Boolean]),
                TypeSignature::Exact(vec![DataType::Int32, DataType::Int64, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
    })
}

#[derive(Debug)]
struct GetIndexdefFunc {
    indexes: Arc<super::catalog::IndexDefs>,
    signature: Signature,
}

impl PartialEq for GetIndexdefFunc {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.indexes, &other.indexes)
    }
}
impl Eq for GetIndexdefFunc {}
impl Hash for GetIndexdefFunc {
    fn hash<H: Hasher>(&self, state: &mut H) {
        "pg_get_indexdef".hash(state);
    }
}

impl ScalarUDFImpl for GetIndexdefFunc {
    fn name(&self) -> &str {
        "pg_get_indexdef"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let oids = arrays[0].as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let cols = arrays
            .get(1)
            .map(|a| datafusion::arrow::compute::cast(a, &DataType::Int64))
            .transpose()?;
        let cols = cols
            .as_ref()
            .map(|a| a.as_primitive::<datafusion::arrow::datatypes::Int64Type>());
        let mut out = StringBuilder::with_capacity(n, n * 16);
        for i in 0..n {
            let column = match cols {
                Some(c) if c.is_null(i) => None,
                Some(c) => Some(c.value(i)),
                None => Some(0),
            };
            match (oids.is_null(i), column) {
                (false, Some(column)) => out.append_option(
                    i32::try_from(column)
                        .ok()
                        .and_then(|c| self.indexes.definition(oids.value(i), c)),
                ),
                _ => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `col_description(table_oid, attnum)` (psql `\d+`, DBeaver, Metabase):
/// the documentation of a canonical table's column.
pub fn col_description(indexes: Arc<super::catalog::IndexDefs>) -> ScalarUDF {
    let udf = move |args: &[ColumnarValue]| -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let oids = datafusion::arrow::compute::cast(&arrays[0], &DataType::Int32)?;
        let nums = datafusion::arrow::compute::cast(&arrays[1], &DataType::Int32)?;
        let oids = oids.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let nums = nums.as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        let mut out = StringBuilder::new();
        for i in 0..oids.len() {
            if oids.is_null(i) || nums.is_null(i) {
                out.append_null();
            } else {
                out.append_option(indexes.column_comment(oids.value(i), nums.value(i)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    };
    datafusion::logical_expr::create_udf(
        "col_description",
        vec![DataType::Int32, DataType::Int32],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(udf),
    )
}

/// `pg_data_type(arrow_type_name)`: PostgreSQL's name (`format_type`'s) for
/// a DataFusion type name as information_schema prints it (`Int64` →
/// `bigint`, `Decimal128(18, 2)` → `numeric`, `Timestamp(µs, "UTC")` →
/// `timestamp with time zone`); for [`crate::server::rewrite`]'s
/// PostgreSQL-shaped `information_schema.columns`. A name that is not an
/// Arrow type is returned as it is.
fn pg_data_type() -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        "pg_data_type",
        vec![DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let names = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
            let names = names.as_string::<i32>();
            let mut out = StringBuilder::with_capacity(names.len(), names.len() * 8);
            for name in names.iter() {
                match name {
                    None => out.append_null(),
                    Some(n) => match n.parse::<DataType>() {
                        Ok(t) => out.append_value(information_schema_type(&t)),
                        Err(_) => out.append_value(n),
                    },
                }
            }
            Ok(ColumnarValue::Array(Arc::new(out.finish())))
        }),
    )
}

/// `information_schema.columns.data_type` of PostgreSQL for an Arrow type
/// (also the base of [`super::procs`]' `format_type`-style names).
pub(super) fn information_schema_type(t: &DataType) -> String {
    match t {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "integer".into(),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => "bigint".into(),
        DataType::Float16 | DataType::Float32 => "real".into(),
        DataType::Float64 => "double precision".into(),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => "numeric".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp with time zone".into(),
        DataType::Timestamp(_, None) => "timestamp without time zone".into(),
        DataType::Time32(_) | DataType::Time64(_) => "time without time zone".into(),
        DataType::Interval(_) | DataType::Duration(_) => "interval".into(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => "ARRAY".into(),
        DataType::Struct(_) => "record".into(),
        DataType::Dictionary(_, v) => information_schema_type(v),
        other => other.to_string(),
    }
}

/// `pg_function_is_visible(oid)` (psql `\df`): true, as every function is
/// on the search path (pg_catalog and public are the only schemas).
fn function_is_visible() -> ScalarUDF {
    datafusion::logical_expr::create_udf(
        "pg_function_is_visible",
        vec![DataType::Int32],
        DataType::Boolean,
        Volatility::Stable,
        Arc::new(|args: &[ColumnarValue]| {
            let rows = args.iter().find_map(|a| match a {
                ColumnarValue::Array(a) => Some(a.len()),
                ColumnarValue::Scalar(_) => None,
            });
            Ok(match rows {
                Some(n) => ColumnarValue::Array(Arc::new(
                    datafusion::arrow::array::BooleanArray::from(vec![true; n]),
                )),
                None => ColumnarValue::Scalar(ScalarValue::Boolean(Some(true))),
            })
        }),
    )
}

/// `version()`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct VersionFunc {
    signature: Signature,
}

impl VersionFunc {
    fn new() -> Self {
        VersionFunc {
            signature: Signature::exact(vec![], Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for VersionFunc {
    fn name(&self) -> &str {
        "version"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            version_string(),
        ))))
    }
}

/// `session_user`, `current_user`, `user`, `current_role`: the logged-in user.
#[derive(Debug)]
pub struct UserFunc {
    name: &'static str,
    info: Arc<SessionInfo>,
    signature: Signature,
}

impl UserFunc {
    fn new(name: &'static str, info: Arc<SessionInfo>) -> Self {
        UserFunc {
            name,
            info,
            signature: Signature::exact(vec![], Volatility::Stable),
        }
    }
}

impl PartialEq for UserFunc {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.info, &other.info)
    }
}
impl Eq for UserFunc {}
impl Hash for UserFunc {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        Arc::as_ptr(&self.info).hash(state);
    }
}

impl ScalarUDFImpl for UserFunc {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            self.info.user(),
        ))))
    }
}

/// `current_setting(name [, missing_ok])`: PostgreSQL settings of this
/// connection, and `datafusion.*` options of its session.
#[derive(Debug)]
pub struct CurrentSettingFunc {
    info: Arc<SessionInfo>,
    signature: Signature,
}

impl CurrentSettingFunc {
    fn new(info: Arc<SessionInfo>) -> Self {
        CurrentSettingFunc {
            info,
            signature: Signature::one_of(
                vec![
                    TypeSignature::String(1),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
        }
    }

    fn lookup(&self, name: &str, options: &datafusion::config::ConfigOptions) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("datafusion.") {
            return options
                .entries()
                .into_iter()
                .find(|e| e.key == lower)
                .map(|e| e.value.unwrap_or_default());
        }
        self.info.setting(&lower)
    }
}

impl PartialEq for CurrentSettingFunc {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.info, &other.info)
    }
}
impl Eq for CurrentSettingFunc {}
impl Hash for CurrentSettingFunc {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.info).hash(state);
    }
}

impl ScalarUDFImpl for CurrentSettingFunc {
    fn name(&self) -> &str {
        "current_setting"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if args.is_empty() || args.len() > 2 {
            return plan_err!(
                "current_setting(name [, missing_ok]) takes 1 or 2 arguments, got {}",
                args.len()
            );
        }
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = args.number_rows;
        let missing_ok = match args.args.get(1) {
            Some(ColumnarValue::Scalar(ScalarValue::Boolean(b))) => b.unwrap_or(false),
            Some(ColumnarValue::Array(a)) => !a.is_empty() && a.as_boolean().value(0),
            _ => false,
        };
        let names = args.args[0].to_array(n)?;
        let names = datafusion::arrow::compute::cast(&names, &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let mut out = StringBuilder::new();
        for i in 0..names.len() {
            if names.is_null(i) {
                out.append_null();
                continue;
            }
            let name = names.value(i);
            match self.lookup(name, &args.config_options) {
                Some(v) => out.append_value(v),
                None if missing_ok => out.append_null(),
                None => {
                    return exec_err!(
                        "unrecognized configuration parameter \"{name}\" in current_setting()"
                    );
                }
            }
        }
        let array: ArrayRef = Arc::new(out.finish());
        if matches!(args.args[0], ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

/// Built-in type names and their OIDs, for `to_regtype`.
const TYPE_OIDS: &[(&str, i32)] = &[
    ("bool", 16),
    ("boolean", 16),
    ("bytea", 17),
    ("int8", 20),
    ("bigint", 20),
    ("int2", 21),
    ("smallint", 21),
    ("int4", 23),
    ("integer", 23),
    ("int", 23),
    ("text", 25),
    ("oid", 26),
    ("json", 114),
    ("float4", 700),
    ("real", 700),
    ("float8", 701),
    ("double precision", 701),
    ("varchar", 1043),
    ("character varying", 1043),
    ("date", 1082),
    ("time", 1083),
    ("timestamp", 1114),
    ("timestamp without time zone", 1114),
    ("timestamptz", 1184),
    ("timestamp with time zone", 1184),
    ("interval", 1186),
    ("numeric", 1700),
    ("uuid", 2950),
    ("jsonb", 3802),
];

/// `to_regtype(name)`: the OID of a built-in type, NULL for any other name
/// (crmdb has no extension types such as hstore; drivers probe for them).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToRegtypeFunc {
    signature: Signature,
}

impl ToRegtypeFunc {
    fn new() -> Self {
        ToRegtypeFunc {
            signature: Signature::string(1, Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for ToRegtypeFunc {
    fn name(&self) -> &str {
        "to_regtype"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let names = args.args[0].to_array(args.number_rows)?;
        let names = datafusion::arrow::compute::cast(&names, &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let out: datafusion::arrow::array::Int32Array = names
            .iter()
            .map(|n| {
                let n = n?
                    .trim()
                    .trim_start_matches("pg_catalog.")
                    .to_ascii_lowercase();
                TYPE_OIDS.iter().find(|(t, _)| *t == n).map(|(_, oid)| *oid)
            })
            .collect();
        let array: ArrayRef = Arc::new(out);
        if matches!(args.args[0], ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &array, 0,
            )?));
        }
        Ok(ColumnarValue::Array(array))
    }
}

#[cfg(test)]
mod pg_type_names {
    use super::*;

    #[test]
    fn arrow_type_names_become_postgres_names() {
        let name = |t: &str| information_schema_type(&t.parse::<DataType>().unwrap());
        assert_eq!(name("Int64"), "bigint");
        assert_eq!(name("Decimal128(18, 2)"), "numeric");
        assert_eq!(name("Timestamp(µs, \"UTC\")"), "timestamp with time zone");
        assert_eq!(name("Utf8View"), "text");
        assert_eq!(name("Date32"), "date");
        assert_eq!(name("Float64"), "double precision");
        assert_eq!(name("Boolean"), "boolean");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn functions_answer_per_session() {
        let ctx = SessionContext::new();
        let info = SessionInfo::new();
        *info.user.write().unwrap() = "alice".into();
        info.set("search_path", "public");
        register(&ctx, &info);
        let batches = ctx
            .sql("SELECT version() AS v, current_setting('search_path') AS s, session_user AS u, current_setting('nope', true) AS n, to_regtype('int8') AS t, to_regtype('hstore') AS h")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let b = &batches[0];
        assert!(
            b.column(0)
                .as_string::<i32>()
                .value(0)
                .starts_with("PostgreSQL 16.6 (crmdb 0.1.0) on ")
        );
        assert_eq!(b.column(1).as_string::<i32>().value(0), "public");
        assert_eq!(b.column(2).as_string::<i32>().value(0), "alice");
        assert!(b.column(3).is_null(0));
        assert_eq!(
            b.column(4)
                .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
                .value(0),
            20
        );
        assert!(b.column(5).is_null(0));
        let err = ctx
            .sql("SELECT current_setting('nope')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("unrecognized configuration parameter \"nope\""),
            "{err}"
        );
    }
}

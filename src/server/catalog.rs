//! crmdb's additions to the `pg_catalog` of datafusion-pg-catalog. The
//! library builds every pg_catalog table; this wrapper amends five of them
//! with what only crmdb knows, so drivers and BI tools see PostgreSQL's
//! answers:
//! - the primary key of each canonical table ([`crate::store::schema`]):
//!   an index relation `<table>_pkey` in `pg_class`, its `pg_index` row and a
//!   `pg_constraint` row (contype `p`), as `CREATE TABLE … PRIMARY KEY` makes
//!   them (pgjdbc `getPrimaryKeys`, SQLAlchemy `get_pk_constraint`, Metabase);
//! - `pg_index.indkey/indcollation/indclass/indoption` and
//!   `pg_constraint.conkey/confkey` as arrays (PostgreSQL's int2vector,
//!   oidvector and int2[]; the library keeps their text), so `unnest(indkey)`
//!   and `_pg_expandarray(indkey)` work;
//! - `pg_attribute.atttypmod` of `numeric(p,s)` columns, so `format_type`
//!   says `numeric(18,2)` and JDBC reports precision and scale; and
//!   `attnotnull = false` on views, as PostgreSQL reports;
//! - `information_schema` in `pg_namespace`.
//!
//! OIDs: the library hands out relation OIDs from 16384 upwards, one per
//! object. The index of a table with OID t gets `t + 1_000_000`, its
//! constraint `t + 2_000_000`, far above that range and stable.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Int32Array, Int32Builder, ListBuilder, PrimitiveBuilder,
    RecordBatch, StringArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Int16Type, Int32Type, Schema, SchemaRef,
};
use datafusion::catalog::{CatalogProviderList, SchemaProvider, Session};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, collect};

use crate::engine::CATALOG;
use crate::store::schema::TABLES;

/// OID offset of a primary key's index relation from its table's OID.
const INDEX_OID_OFFSET: i32 = 1_000_000;
/// OID offset of a primary key constraint from its table's OID.
const CONSTRAINT_OID_OFFSET: i32 = 2_000_000;
/// OID shown for `information_schema` (PostgreSQL assigns it at initdb, in
/// the 13000s; nothing in crmdb's catalog refers to it).
const INFORMATION_SCHEMA_OID: i32 = 13_000;
/// PostgreSQL's OID of `public`, used when no relation names it.
const PUBLIC_NAMESPACE_OID: i32 = 2200;
/// `pg_am.oid` of btree.
const BTREE_AM_OID: i32 = 403;
/// `pg_type.oid` of numeric.
const NUMERIC_OID: i32 = 1700;

/// The primary-key indexes the overlay has listed, by index OID, for
/// `pg_get_indexdef`: (schema, table, index name, key column names). Filled
/// whenever pg_class, pg_index or pg_constraint is planned, which a query
/// that learns an index's OID has done before it asks for its definition.
#[derive(Debug, Default)]
pub struct IndexDefs {
    by_oid: std::sync::RwLock<HashMap<i32, IndexDef>>,
    /// The canonical tables by OID, for `col_description` / `obj_description`.
    tables: std::sync::RwLock<HashMap<i32, &'static crate::store::schema::TableDef>>,
}

#[derive(Debug, Clone)]
struct IndexDef {
    schema: String,
    table: String,
    index: String,
    columns: Vec<String>,
}

impl IndexDefs {
    /// `col_description(table_oid, attnum)`: the column's documentation from
    /// the table definitions (the comment `\d+` shows); NULL elsewhere.
    pub fn column_comment(&self, table_oid: i32, attnum: i32) -> Option<String> {
        let tables = self.tables.read().ok()?;
        let def = tables.get(&table_oid)?;
        let k = usize::try_from(attnum).ok()?.checked_sub(1)?;
        def.columns.get(k).map(|c| c.doc.to_string())
    }

    fn note_tables(&self, relations: &Relations) {
        if let Ok(mut tables) = self.tables.write() {
            for def in TABLES {
                if let Some(rel) = relations.find("public", def.name)
                    && rel.kind == "r"
                {
                    tables.insert(rel.oid, def);
                }
            }
        }
    }

    /// `pg_get_indexdef(oid, column, pretty)`: column 0 is the whole
    /// `CREATE UNIQUE INDEX` statement, column k the k-th key column's name;
    /// NULL for an OID that is not an index (as PostgreSQL).
    pub fn definition(&self, oid: i32, column: i32) -> Option<String> {
        let map = self.by_oid.read().ok()?;
        let def = map.get(&oid)?;
        if column == 0 {
            Some(format!(
                "CREATE UNIQUE INDEX {} ON {}.{} USING btree ({})",
                def.index,
                def.schema,
                def.table,
                def.columns.join(", ")
            ))
        } else {
            let k = usize::try_from(column).ok()?.checked_sub(1)?;
            def.columns.get(k).cloned()
        }
    }
}

/// The pg_catalog schema: the library's, with crmdb's amendments.
#[derive(Debug)]
pub struct PgCatalogOverlay {
    inner: Arc<dyn SchemaProvider>,
    catalogs: Arc<dyn CatalogProviderList>,
    indexes: Arc<IndexDefs>,
}

impl PgCatalogOverlay {
    /// Wrap the library's pg_catalog provider; `catalogs` is the catalog
    /// list whose tables it describes.
    pub fn new(
        inner: Arc<dyn SchemaProvider>,
        catalogs: Arc<dyn CatalogProviderList>,
        indexes: Arc<IndexDefs>,
    ) -> PgCatalogOverlay {
        PgCatalogOverlay {
            inner,
            catalogs,
            indexes,
        }
    }

    /// The index list this overlay fills (shared with `pg_get_indexdef`).
    pub fn indexes(&self) -> Arc<IndexDefs> {
        self.indexes.clone()
    }
}

/// The tables this module amends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Amended {
    Class,
    Index,
    Constraint,
    Attribute,
    Namespace,
    Proc,
}

impl Amended {
    fn of(name: &str) -> Option<Amended> {
        match name.to_ascii_lowercase().as_str() {
            "pg_class" => Some(Amended::Class),
            "pg_index" => Some(Amended::Index),
            "pg_constraint" => Some(Amended::Constraint),
            "pg_attribute" => Some(Amended::Attribute),
            "pg_namespace" => Some(Amended::Namespace),
            "pg_proc" => Some(Amended::Proc),
            _ => None,
        }
    }

    /// PostgreSQL columns the library's table lacks, added as all-NULL
    /// (psql `\d+` reads `pg_class.reloptions`).
    fn missing_columns(self) -> &'static [(&'static str, DataType)] {
        static RELOPTIONS: std::sync::LazyLock<[(&str, DataType); 1]> =
            std::sync::LazyLock::new(|| [("reloptions", DataType::new_list(DataType::Utf8, true))]);
        match self {
            Amended::Class => RELOPTIONS.as_slice(),
            _ => &[],
        }
    }

    /// Columns whose text (`"1 2"`, `"{1,2}"`) becomes an array, with the element type.
    fn array_columns(self) -> &'static [(&'static str, DataType)] {
        match self {
            Amended::Index => &[
                ("indkey", DataType::Int16),
                ("indcollation", DataType::Int32),
                ("indclass", DataType::Int32),
                ("indoption", DataType::Int16),
            ],
            Amended::Constraint => &[("conkey", DataType::Int16), ("confkey", DataType::Int16)],
            _ => &[],
        }
    }
}

#[async_trait]
impl SchemaProvider for PgCatalogOverlay {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        let Some(which) = Amended::of(name) else {
            return Ok(Some(table));
        };
        let arrays = which.array_columns();
        let mut fields = table
            .schema()
            .fields()
            .iter()
            .map(|f| match arrays.iter().find(|(c, _)| c == f.name()) {
                Some((_, element)) => Arc::new(
                    Field::new(
                        f.name(),
                        DataType::new_list(element.clone(), true),
                        f.is_nullable(),
                    )
                    .with_metadata(f.metadata().clone()),
                ),
                None => f.clone(),
            })
            .collect::<Vec<_>>();
        for (name, data_type) in which.missing_columns() {
            if !fields.iter().any(|f| f.name() == name) {
                fields.push(Arc::new(Field::new(*name, data_type.clone(), true)));
            }
        }
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            table.schema().metadata().clone(),
        ));
        Ok(Some(Arc::new(AmendedTable {
            which,
            table,
            schema,
            library: self.inner.clone(),
            catalogs: self.catalogs.clone(),
            indexes: self.indexes.clone(),
        })))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}

/// One amended pg_catalog table.
#[derive(Debug)]
struct AmendedTable {
    which: Amended,
    table: Arc<dyn TableProvider>,
    schema: SchemaRef,
    library: Arc<dyn SchemaProvider>,
    catalogs: Arc<dyn CatalogProviderList>,
    indexes: Arc<IndexDefs>,
}

#[async_trait]
impl TableProvider for AmendedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.table.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = read(self.table.as_ref(), state).await?;
        let rows = with_missing_columns(&rows, &self.schema)?;
        let rows = arrays_from_text(&rows, &self.schema, self.which)?;
        let relations = Relations::read(self.library.as_ref(), state).await?;
        self.indexes.note_tables(&relations);
        let batch = match self.which {
            Amended::Namespace => append(
                &rows,
                &[vec![
                    ("oid", ScalarValue::Int32(Some(INFORMATION_SCHEMA_OID))),
                    ("nspname", utf8("information_schema")),
                    ("nspowner", ScalarValue::Int32(Some(10))),
                ]],
            )?,
            Amended::Attribute => self.amend_attributes(&rows, &relations).await?,
            Amended::Proc => append(&rows, &proc_rows(&relations))?,
            Amended::Class => append(&rows, &self.keys(&relations).await?.class_rows())?,
            Amended::Index => append(&rows, &self.keys(&relations).await?.index_rows())?,
            Amended::Constraint => append(&rows, &self.keys(&relations).await?.constraint_rows())?,
        };
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

impl AmendedTable {
    /// The primary keys of the canonical tables that exist in `crm.public`.
    async fn keys(&self, relations: &Relations) -> Result<Keys> {
        let mut keys = Vec::new();
        for def in TABLES {
            let Some(rel) = relations.find("public", def.name) else {
                continue;
            };
            if rel.kind != "r" {
                continue;
            }
            let Some(schema) = self.table_schema("public", def.name).await? else {
                continue;
            };
            let mut attnums = Vec::with_capacity(def.key.len());
            for column in def.key {
                let index = schema.index_of(column).map_err(|_| {
                    DataFusionError::Internal(format!(
                        "key column {column} of table {} is missing from its schema",
                        def.name
                    ))
                })?;
                attnums.push(i16::try_from(index + 1).map_err(|_| {
                    DataFusionError::Internal(format!("table {} has too many columns", def.name))
                })?);
            }
            keys.push(Key {
                table: def.name,
                table_oid: rel.oid,
                namespace_oid: rel.namespace_oid,
                attnums,
            });
        }
        if let Ok(mut map) = self.indexes.by_oid.write() {
            for k in &keys {
                map.insert(
                    k.index_oid(),
                    IndexDef {
                        schema: "public".to_string(),
                        table: k.table.to_string(),
                        index: k.name(),
                        columns: TABLES
                            .iter()
                            .find(|t| t.name == k.table)
                            .map(|t| t.key.iter().map(|c| c.to_string()).collect())
                            .unwrap_or_default(),
                    },
                );
            }
        }
        Ok(Keys(keys))
    }

    async fn table_schema(&self, schema: &str, table: &str) -> Result<Option<SchemaRef>> {
        let Some(provider) = self
            .catalogs
            .catalog(CATALOG)
            .and_then(|c| c.schema(schema))
        else {
            return Ok(None);
        };
        Ok(provider.table(table).await?.map(|t| t.schema()))
    }

    /// `atttypmod` of numeric columns; `attnotnull = false` on views.
    async fn amend_attributes(
        &self,
        rows: &RecordBatch,
        relations: &Relations,
    ) -> Result<RecordBatch> {
        let column = |name: &str| {
            rows.column_by_name(name).ok_or_else(|| {
                DataFusionError::Internal(format!("pg_attribute has no column {name}"))
            })
        };
        let relids = column("attrelid")?.as_primitive::<Int32Type>().clone();
        let typids = column("atttypid")?.as_primitive::<Int32Type>().clone();
        let attnums = column("attnum")?.as_primitive::<Int16Type>().clone();
        let typmods = column("atttypmod")?.as_primitive::<Int32Type>().clone();
        let notnulls = column("attnotnull")?.as_boolean().clone();
        let mut schemas: HashMap<i32, Option<SchemaRef>> = HashMap::new();
        let mut new_typmods = Int32Builder::with_capacity(rows.num_rows());
        let mut new_notnulls = Vec::with_capacity(rows.num_rows());
        for i in 0..rows.num_rows() {
            let rel = relations.by_oid.get(&relids.value(i));
            let mut typmod = typmods.value(i);
            if typids.value(i) == NUMERIC_OID
                && let Some(rel) = rel
            {
                if let std::collections::hash_map::Entry::Vacant(slot) = schemas.entry(rel.oid) {
                    slot.insert(self.table_schema(&rel.namespace, &rel.name).await?);
                }
                let field = schemas
                    .get(&rel.oid)
                    .and_then(|s| s.as_ref())
                    .and_then(|s| {
                        usize::try_from(attnums.value(i) - 1)
                            .ok()
                            .and_then(|k| s.fields().get(k).cloned())
                    });
                if let Some(field) = field
                    && let DataType::Decimal128(p, s) | DataType::Decimal256(p, s) =
                        field.data_type()
                {
                    typmod = ((i32::from(*p) << 16) | i32::from(*s)) + 4;
                }
            }
            new_typmods.append_value(typmod);
            let is_view = rel.is_some_and(|r| r.kind == "v");
            new_notnulls.push(notnulls.value(i) && !is_view);
        }
        let mut columns = rows.columns().to_vec();
        let schema = rows.schema();
        columns[schema.index_of("atttypmod")?] = Arc::new(new_typmods.finish());
        columns[schema.index_of("attnotnull")?] = Arc::new(BooleanArray::from(new_notnulls));
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// All rows of a library table.
async fn read(table: &dyn TableProvider, state: &dyn Session) -> Result<RecordBatch> {
    let plan = table.scan(state, None, &[], None).await?;
    let batches = collect(plan, state.task_ctx()).await?;
    Ok(concat_batches(&table.schema(), &batches)?)
}

/// One relation of pg_class.
#[derive(Debug, Clone)]
struct Relation {
    oid: i32,
    name: String,
    namespace_oid: i32,
    namespace: String,
    kind: String,
}

/// pg_class joined with pg_namespace, as the library reports them.
#[derive(Debug, Default)]
struct Relations {
    by_oid: HashMap<i32, Relation>,
}

impl Relations {
    async fn read(library: &dyn SchemaProvider, state: &dyn Session) -> Result<Relations> {
        let table = |name: &'static str| async move {
            library.table(name).await?.ok_or_else(|| {
                DataFusionError::Internal(format!("datafusion-pg-catalog has no {name}"))
            })
        };
        let namespaces = read(table("pg_namespace").await?.as_ref(), state).await?;
        let classes = read(table("pg_class").await?.as_ref(), state).await?;
        let strings = |b: &RecordBatch, c: &str| -> Result<StringArray> {
            let col = b.column_by_name(c).ok_or_else(|| {
                DataFusionError::Internal(format!("pg_catalog table without column {c}"))
            })?;
            Ok(datafusion::arrow::compute::cast(col, &DataType::Utf8)?
                .as_string::<i32>()
                .clone())
        };
        let ints = |b: &RecordBatch, c: &str| -> Result<Int32Array> {
            let col = b.column_by_name(c).ok_or_else(|| {
                DataFusionError::Internal(format!("pg_catalog table without column {c}"))
            })?;
            Ok(datafusion::arrow::compute::cast(col, &DataType::Int32)?
                .as_primitive::<Int32Type>()
                .clone())
        };
        let (ns_oids, ns_names) = (ints(&namespaces, "oid")?, strings(&namespaces, "nspname")?);
        let ns: HashMap<i32, String> = (0..namespaces.num_rows())
            .map(|i| (ns_oids.value(i), ns_names.value(i).to_string()))
            .collect();
        let (oids, names, nsps, kinds) = (
            ints(&classes, "oid")?,
            strings(&classes, "relname")?,
            ints(&classes, "relnamespace")?,
            strings(&classes, "relkind")?,
        );
        let by_oid = (0..classes.num_rows())
            .map(|i| {
                let rel = Relation {
                    oid: oids.value(i),
                    name: names.value(i).to_string(),
                    namespace_oid: nsps.value(i),
                    namespace: ns.get(&nsps.value(i)).cloned().unwrap_or_default(),
                    kind: kinds.value(i).to_string(),
                };
                (rel.oid, rel)
            })
            .collect();
        Ok(Relations { by_oid })
    }

    fn find(&self, namespace: &str, name: &str) -> Option<&Relation> {
        self.by_oid
            .values()
            .find(|r| r.namespace == namespace && r.name == name)
    }
}

/// The primary key of one table.
#[derive(Debug)]
struct Key {
    table: &'static str,
    table_oid: i32,
    namespace_oid: i32,
    attnums: Vec<i16>,
}

impl Key {
    fn name(&self) -> String {
        format!("{}_pkey", self.table)
    }
    fn index_oid(&self) -> i32 {
        self.table_oid + INDEX_OID_OFFSET
    }
}

type Row = Vec<(&'static str, ScalarValue)>;

struct Keys(Vec<Key>);

impl Keys {
    fn class_rows(&self) -> Vec<Row> {
        self.0
            .iter()
            .map(|k| {
                vec![
                    ("oid", ScalarValue::Int32(Some(k.index_oid()))),
                    ("relname", utf8(&k.name())),
                    ("relnamespace", ScalarValue::Int32(Some(k.namespace_oid))),
                    ("relam", ScalarValue::Int32(Some(BTREE_AM_OID))),
                    ("relfilenode", ScalarValue::Int32(Some(k.index_oid()))),
                    ("relpages", ScalarValue::Int32(Some(1))),
                    ("relpersistence", utf8("p")),
                    ("relkind", utf8("i")),
                    ("relnatts", ScalarValue::Int16(Some(len_i16(&k.attnums)))),
                    ("relispopulated", ScalarValue::Boolean(Some(true))),
                    ("relreplident", utf8("n")),
                    ("relpartbound", utf8("")),
                ]
            })
            .collect()
    }

    fn index_rows(&self) -> Vec<Row> {
        self.0
            .iter()
            .map(|k| {
                let n = len_i16(&k.attnums);
                let zeros16 = vec![Some(0i16); k.attnums.len()];
                let zeros32 = vec![Some(0i32); k.attnums.len()];
                vec![
                    ("indexrelid", ScalarValue::Int32(Some(k.index_oid()))),
                    ("indrelid", ScalarValue::Int32(Some(k.table_oid))),
                    ("indnatts", ScalarValue::Int16(Some(n))),
                    ("indnkeyatts", ScalarValue::Int16(Some(n))),
                    ("indisunique", ScalarValue::Boolean(Some(true))),
                    ("indisprimary", ScalarValue::Boolean(Some(true))),
                    ("indimmediate", ScalarValue::Boolean(Some(true))),
                    ("indisvalid", ScalarValue::Boolean(Some(true))),
                    ("indisready", ScalarValue::Boolean(Some(true))),
                    ("indislive", ScalarValue::Boolean(Some(true))),
                    (
                        "indkey",
                        list16(k.attnums.iter().map(|a| Some(*a)).collect()),
                    ),
                    ("indcollation", list32(zeros32.clone())),
                    ("indclass", list32(zeros32)),
                    ("indoption", list16(zeros16)),
                ]
            })
            .collect()
    }

    fn constraint_rows(&self) -> Vec<Row> {
        self.0
            .iter()
            .map(|k| {
                vec![
                    (
                        "oid",
                        ScalarValue::Int32(Some(k.table_oid + CONSTRAINT_OID_OFFSET)),
                    ),
                    ("conname", utf8(&k.name())),
                    ("connamespace", ScalarValue::Int32(Some(k.namespace_oid))),
                    ("contype", utf8("p")),
                    ("convalidated", ScalarValue::Boolean(Some(true))),
                    ("conrelid", ScalarValue::Int32(Some(k.table_oid))),
                    ("conindid", ScalarValue::Int32(Some(k.index_oid()))),
                    ("confupdtype", utf8(" ")),
                    ("confdeltype", utf8(" ")),
                    ("confmatchtype", utf8(" ")),
                    ("conislocal", ScalarValue::Boolean(Some(true))),
                    ("connoinherit", ScalarValue::Boolean(Some(true))),
                    (
                        "conkey",
                        list16(k.attnums.iter().map(|a| Some(*a)).collect()),
                    ),
                ]
            })
            .collect()
    }
}

fn len_i16(v: &[i16]) -> i16 {
    i16::try_from(v.len()).unwrap_or(i16::MAX)
}

fn utf8(s: &str) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}

fn list16(values: Vec<Option<i16>>) -> ScalarValue {
    ScalarValue::List(Arc::new(
        datafusion::arrow::array::ListArray::from_iter_primitive::<Int16Type, _, _>(vec![Some(
            values,
        )]),
    ))
}

fn list32(values: Vec<Option<i32>>) -> ScalarValue {
    ScalarValue::List(Arc::new(
        datafusion::arrow::array::ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(
            values,
        )]),
    ))
}

/// `rows` plus `extra` rows; columns an extra row does not name are NULL, or
/// the type's zero (false, 0, '') where the column is NOT NULL.
/// crmdb's CRM functions ([`super::procs`]) as `pg_proc` rows in `public`.
fn proc_rows(relations: &Relations) -> Vec<Row> {
    let public = relations
        .by_oid
        .values()
        .find(|r| r.namespace == "public")
        .map(|r| r.namespace_oid)
        .unwrap_or(PUBLIC_NAMESPACE_OID);
    super::procs::PROCS
        .iter()
        .map(|p| {
            vec![
                ("oid", ScalarValue::Int32(Some(p.oid))),
                ("proname", utf8(&p.name)),
                ("pronamespace", ScalarValue::Int32(Some(public))),
                ("proowner", ScalarValue::Int32(Some(10))),
                ("prokind", utf8(p.kind)),
                ("proisstrict", ScalarValue::Boolean(Some(false))),
                ("provolatile", utf8("i")),
            ]
        })
        .collect()
}

/// `rows` with all-NULL columns for the fields of `schema` it lacks (added
/// at the end by [`Amended::missing_columns`]).
fn with_missing_columns(rows: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let have = rows.num_columns();
    if have >= schema.fields().len() {
        return Ok(rows.clone());
    }
    let mut columns = rows.columns().to_vec();
    let mut fields: Vec<_> = rows.schema().fields().iter().cloned().collect();
    for f in &schema.fields()[have..] {
        columns.push(datafusion::arrow::array::new_null_array(
            f.data_type(),
            rows.num_rows(),
        ));
        fields.push(f.clone());
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(
            fields,
            rows.schema().metadata().clone(),
        )),
        columns,
    )?)
}

fn append(rows: &RecordBatch, extra: &[Row]) -> Result<RecordBatch> {
    if extra.is_empty() {
        return Ok(rows.clone());
    }
    let schema = rows.schema();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let values = extra
            .iter()
            .map(|row| {
                let value = row
                    .iter()
                    .find(|(name, _)| name == field.name())
                    .map(|(_, v)| v.clone());
                match value {
                    Some(v) => v.cast_to(field.data_type()),
                    None if field.is_nullable() => ScalarValue::try_from(field.data_type()),
                    None => zero(field.data_type()),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        columns.push(ScalarValue::iter_to_array(values)?);
    }
    let extra = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(concat_batches(&schema, [rows, &extra])?)
}

fn zero(data_type: &DataType) -> Result<ScalarValue> {
    match data_type {
        DataType::Utf8 => Ok(utf8("")),
        DataType::List(f) => Ok(ScalarValue::List(Arc::new(
            datafusion::arrow::array::ListArray::new_null(f.clone(), 1),
        ))),
        other => ScalarValue::new_zero(other),
    }
}

/// The library keeps int2vector / oidvector / int2[] columns as their text
/// (`"1 2"`, `"{1,2}"`); give them the array type of `schema`.
fn arrays_from_text(rows: &RecordBatch, schema: &SchemaRef, which: Amended) -> Result<RecordBatch> {
    let arrays = which.array_columns();
    if arrays.is_empty() {
        return Ok(rows.clone());
    }
    let mut columns = rows.columns().to_vec();
    for (name, element) in arrays {
        let index = rows.schema().index_of(name)?;
        let text = datafusion::arrow::compute::cast(&columns[index], &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        columns[index] = match element {
            DataType::Int16 => parse_lists::<Int16Type>(text, name)?,
            _ => parse_lists::<Int32Type>(text, name)?,
        };
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn parse_lists<T: ArrowPrimitiveType>(text: &StringArray, column: &str) -> Result<ArrayRef>
where
    T::Native: std::str::FromStr,
{
    let mut builder = ListBuilder::new(PrimitiveBuilder::<T>::new());
    for value in text.iter() {
        match value {
            None => builder.append_null(),
            Some(v) => {
                // PostgreSQL's `{1,2}`, int2vector's `1 2`, and Arrow's `[1, 2]`
                // (crmdb's own key rows, cast to the library's text column)
                let inner = v
                    .trim()
                    .trim_matches(|c| matches!(c, '{' | '}' | '[' | ']'));
                for item in inner.split([' ', ',']).filter(|s| !s.is_empty()) {
                    let parsed = item.parse::<T::Native>().map_err(|_| {
                        DataFusionError::Internal(format!(
                            "pg_catalog column {column}: '{item}' in '{v}' is not a number"
                        ))
                    })?;
                    builder.values().append_value(parsed);
                }
                builder.append(true);
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

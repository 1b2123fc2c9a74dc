//! The viewer's view of the data: in a viewer's session, `customers` (and
//! `crm.public.customers`) resolves to a projection with `name`, `phone` and
//! `email` passed through `mask_name` / `mask_phone` / `mask_email`. Only that
//! session sees it; the shared catalog is not changed. If a masking function
//! is missing the viewer's login fails (fail closed), it never falls back to
//! raw data.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, CatalogProviderList, SchemaProvider, Session};
use datafusion::datasource::{TableProvider, TableType, ViewTable, provider_as_source};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{FunctionRegistry, SessionStateBuilder};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionContext, col};

use crate::engine::{CATALOG, SCHEMA};
use crate::error::{Error, Result};

/// The masked table and its masked columns with their functions.
pub const MASKED: (&str, &[(&str, &str)]) = (
    "customers",
    &[
        ("name", "mask_name"),
        ("phone", "mask_phone"),
        ("email", "mask_email"),
    ],
);

/// Turn `ctx` into a viewer's session (same settings and functions).
pub async fn masked_session(ctx: SessionContext) -> Result<SessionContext> {
    let (table, columns) = MASKED;
    let catalogs = ctx.state().catalog_list().clone();
    let catalog = catalogs
        .catalog(CATALOG)
        .ok_or_else(|| Error::Usage(format!("catalog {CATALOG} missing")))?;
    let schema = catalog
        .schema(SCHEMA)
        .ok_or_else(|| Error::Usage(format!("schema {SCHEMA} missing")))?;
    let base = schema.table(table).await?.ok_or_else(|| {
        Error::Usage(format!(
            "table {table} missing: cannot build the masked view"
        ))
    })?;
    let mut exprs: Vec<Expr> = Vec::new();
    for field in base.schema().fields() {
        let name = field.name();
        match columns.iter().find(|(c, _)| c == name) {
            Some((_, func)) => {
                let udf = ctx.udf(func).map_err(|e| {
                    Error::PermissionDenied(format!(
                        "masking function {func} is not available ({e}); viewer logins are refused"
                    ))
                })?;
                exprs.push(udf.call(vec![col(name.as_str())]).alias(name.as_str()));
            }
            None => exprs.push(col(name.as_str())),
        }
    }
    let plan = LogicalPlanBuilder::scan(table, provider_as_source(base), None)?
        .project(exprs)?
        .build()?;
    let masked: Arc<dyn TableProvider> = Arc::new(MaskedTable {
        view: ViewTable::new(plan, None),
    });
    let list = Arc::new(MaskedCatalogList {
        inner: catalogs.clone(),
        crm: Arc::new(MaskedCatalog {
            inner: catalog.clone(),
            public: Arc::new(MaskedSchema {
                inner: schema,
                table: table.to_string(),
                masked,
            }),
        }),
    });
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_catalog_list(list)
        .build();
    Ok(SessionContext::new_with_state(state))
}

/// The masked projection, presented as a base table (as `customers` is for others).
#[derive(Debug)]
struct MaskedTable {
    view: ViewTable,
}

#[async_trait]
impl TableProvider for MaskedTable {
    fn schema(&self) -> SchemaRef {
        self.view.schema()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        None
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.view.scan(state, projection, filters, limit).await
    }
}

#[derive(Debug)]
struct MaskedCatalogList {
    inner: Arc<dyn CatalogProviderList>,
    crm: Arc<dyn CatalogProvider>,
}

impl CatalogProviderList for MaskedCatalogList {
    fn register_catalog(
        &self,
        name: String,
        catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        self.inner.register_catalog(name, catalog)
    }
    fn catalog_names(&self) -> Vec<String> {
        self.inner.catalog_names()
    }
    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        if name == CATALOG {
            Some(self.crm.clone())
        } else {
            self.inner.catalog(name)
        }
    }
}

#[derive(Debug)]
struct MaskedCatalog {
    inner: Arc<dyn CatalogProvider>,
    public: Arc<dyn SchemaProvider>,
}

impl CatalogProvider for MaskedCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SCHEMA {
            Some(self.public.clone())
        } else {
            self.inner.schema(name)
        }
    }
    fn register_schema(
        &self,
        name: &str,
        _schema: Arc<dyn SchemaProvider>,
    ) -> DFResult<Option<Arc<dyn SchemaProvider>>> {
        Err(DataFusionError::Plan(format!(
            "permission denied: a viewer session cannot create schema {name}"
        )))
    }
}

#[derive(Debug)]
struct MaskedSchema {
    inner: Arc<dyn SchemaProvider>,
    table: String,
    masked: Arc<dyn TableProvider>,
}

#[async_trait]
impl SchemaProvider for MaskedSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }
    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if name == self.table {
            Ok(Some(self.masked.clone()))
        } else {
            self.inner.table(name).await
        }
    }
    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::Plan(format!(
            "permission denied: a viewer session cannot create table {name}"
        )))
    }
}

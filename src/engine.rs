//! The query engine: one [`Engine`] per process, built once over a [`Store`]
//! and shared by every front end (CLI, pgwire server, exports).
//!
//! It owns the shared parts — the catalog `crm` with schema `public` (canonical
//! tables, views), the runtime with its memory pool and spill directory — and
//! hands out independent sessions ([`Engine::session`]) whose settings are
//! their own, so one connection's `SET` never changes another's.
//!
//! Tables are registered as [`LiveTable`]s: every scan reads the latest
//! committed Delta version, so loads made by this or another process are seen
//! by the next query, and a query never sees half a load.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, Session,
};
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DFResult;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::object_store::ObjectStoreExt as _;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake::DeltaTable;
use tokio::sync::Mutex;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::scan::VersionFiles;
use crate::store::schema::TABLES;
use crate::views::{self, CrmOptions};

/// Name of the catalog (= the PostgreSQL database name).
pub const CATALOG: &str = "crm";
/// Name of the schema holding tables and views.
pub const SCHEMA: &str = "public";

/// The shared query engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: Arc<Config>,
    /// Session defaults of the `crm.*` settings.
    crm: CrmOptions,
    runtime: Arc<RuntimeEnv>,
    catalogs: Arc<dyn CatalogProviderList>,
    schema: Arc<dyn SchemaProvider>,
}

impl Engine {
    /// Build the engine over an opened store.
    pub async fn open(store: Store, config: Arc<Config>) -> Result<Engine> {
        let mut disk = DiskManagerBuilder::default();
        if let Some(dir) = &config.engine.spill_dir {
            disk = disk.with_mode(DiskManagerMode::Directories(vec![dir.clone()]));
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(FairSpillPool::new(
                config.engine.memory_limit.0 as usize,
            )))
            .with_disk_manager_builder(disk)
            .build_arc()?;
        let catalogs: Arc<dyn CatalogProviderList> = Arc::new(MemoryCatalogProviderList::new());
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let schema: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
        catalog.register_schema(SCHEMA, schema.clone())?;
        catalogs.register_catalog(CATALOG.to_string(), catalog);
        for def in TABLES {
            let table = store.table(def.name).await?;
            schema.register_table(def.name.to_string(), Arc::new(LiveTable::new(table).await?))?;
        }
        let crm = CrmOptions::from_config(&config.crm, config.as_of()).map_err(|reason| {
            Error::Config {
                path: config
                    .source
                    .clone()
                    .unwrap_or_else(|| Config::FILE_NAME.into()),
                reason,
            }
        })?;
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                config,
                crm,
                runtime,
                catalogs,
                schema,
            }),
        };
        views::register(
            &engine.session(),
            &engine.inner.schema,
            &engine.inner.store,
            &engine.inner.crm,
            Arc::new(views::cache::ViewCache::new(
                engine.inner.config.engine.view_cache.0,
            )),
        )
        .await?;
        // the system table of export runs (see crate::export::history)
        crate::export::history::register(&engine.inner.schema, &engine.inner.store).await?;
        Ok(engine)
    }

    /// A new, independent session: its own settings, the shared catalog,
    /// runtime (memory limit) and every CRM function.
    pub fn session(&self) -> SessionContext {
        let engine = &self.inner.config.engine;
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, SCHEMA)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true)
            .with_batch_size(engine.batch_size)
            .with_option_extension(CrmOptions {
                // "today" when not configured: taken when the session opens,
                // so a long-running server moves on at midnight (UTC).
                as_of: self.inner.config.as_of(),
                ..self.inner.crm.clone()
            });
        if let Some(n) = engine.target_partitions {
            config = config.with_target_partitions(n);
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(self.inner.runtime.clone())
            .with_catalog_list(self.inner.catalogs.clone())
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        crmdb_udfs::register_all(&ctx);
        ctx
    }

    /// The store the engine reads.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.inner.config
    }

    /// The shared catalog list (catalog `crm`).
    pub fn catalog_list(&self) -> &Arc<dyn CatalogProviderList> {
        &self.inner.catalogs
    }

    /// The shared schema `crm.public`, where tables and views live.
    pub fn schema(&self) -> &Arc<dyn SchemaProvider> {
        &self.inner.schema
    }

    /// The shared runtime (memory pool, disk manager).
    pub fn runtime(&self) -> &Arc<RuntimeEnv> {
        &self.inner.runtime
    }
}

/// A Delta table that always scans its latest committed version.
///
/// Per version it keeps delta-rs' provider (for writes, and for reading a
/// version that needs more than plain Parquet) and, where the version allows,
/// its file list ([`VersionFiles`]), so a scan does not replay the log again.
#[derive(Debug)]
pub struct LiveTable {
    schema: SchemaRef,
    state: Mutex<LiveState>,
}

#[derive(Debug)]
struct LiveState {
    table: DeltaTable,
    provider: Arc<dyn TableProvider>,
    files: Option<Arc<VersionFiles>>,
}

/// What one scan reads: the plain file list when the version has one.
enum Reader {
    Files(Arc<VersionFiles>),
    Delta(Arc<dyn TableProvider>),
}

impl LiveTable {
    /// Wrap a loaded Delta table.
    pub async fn new(table: DeltaTable) -> Result<LiveTable> {
        let provider = table.table_provider().await?;
        let schema = provider.schema();
        let files = VersionFiles::of(&table, &schema).map(Arc::new);
        Ok(LiveTable {
            schema,
            state: Mutex::new(LiveState {
                table,
                provider,
                files,
            }),
        })
    }

    /// The latest committed Delta version (refreshing first); `None` for a
    /// table without commits.
    pub async fn version(&self) -> DFResult<Option<u64>> {
        self.current().await?;
        Ok(self.state.lock().await.table.version())
    }

    /// Bring the state to the latest committed version. Its files are read
    /// with the schema the table was registered with, the one every plan
    /// over it was made for.
    async fn refresh(&self, state: &mut LiveState) -> DFResult<()> {
        let before = state.table.version();
        if let Some(version) = before
            && !committed_after(&state.table, version).await?
        {
            return Ok(());
        }
        state
            .table
            .update_incremental(None)
            .await
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
        if state.table.version() != before {
            state.provider = state.table.table_provider().await?;
            state.files = VersionFiles::of(&state.table, &self.schema).map(Arc::new);
        }
        Ok(())
    }

    /// delta-rs' provider of the latest committed version (refreshing if a
    /// newer version has been committed since the last call).
    pub async fn current(&self) -> DFResult<Arc<dyn TableProvider>> {
        let mut state = self.state.lock().await;
        self.refresh(&mut state).await?;
        Ok(state.provider.clone())
    }

    /// What a scan of the latest committed version reads.
    async fn reader(&self) -> DFResult<Reader> {
        let mut state = self.state.lock().await;
        self.refresh(&mut state).await?;
        Ok(match &state.files {
            Some(files) => Reader::Files(files.clone()),
            None => Reader::Delta(state.provider.clone()),
        })
    }
}

/// Whether a version after `version` has been committed to `table`.
///
/// Delta commits version n by creating `_delta_log/{n:020}.json`, once and
/// atomically, and versions follow each other without gaps: one metadata
/// lookup of the next version's file answers what bringing the table up to
/// date (listing the log, through the kernel, on a blocking thread) would,
/// and every scan and every re-run of a kept plan asks it.
async fn committed_after(table: &DeltaTable, version: u64) -> DFResult<bool> {
    let Some(next) = version.checked_add(1) else {
        return Ok(false);
    };
    let path = deltalake::Path::from(format!("_delta_log/{next:020}.json"));
    match table.log_store().object_store(None).head(&path).await {
        Ok(_) => Ok(true),
        Err(deltalake::ObjectStoreError::NotFound { .. }) => Ok(false),
        Err(e) => Err(datafusion::error::DataFusionError::ObjectStore(Box::new(e))),
    }
}

#[async_trait]
impl TableProvider for LiveTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn constraints(&self) -> Option<&Constraints> {
        None
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        None
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Delta's provider uses filters for file skipping and applies them
        // inexactly; the plan keeps its own filter on top.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        match self.reader().await? {
            Reader::Files(files) => files.scan(state, projection, limit).await,
            Reader::Delta(provider) => provider.scan(state, projection, filters, limit).await,
        }
    }

    fn statistics(&self) -> Option<Statistics> {
        None
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        self.current()
            .await?
            .insert_into(state, input, insert_op)
            .await
    }
}

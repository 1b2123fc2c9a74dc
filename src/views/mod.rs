//! The built-in views: the CRM semantic layer BI tools list like tables.
//!
//! Each view is a [`SqlView`]: a table provider of type VIEW whose SQL is
//! written at scan time for the querying session's `crm.*` settings
//! ([`CrmOptions`], so `SET crm.as_of` changes what a view shows for that
//! session only) and planned in that session (so a viewer's masking applies
//! underneath). Filters, projections and limits on a view are planned on top
//! of its SQL, so the optimiser pushes them down as it would for a CTE.
//!
//! `customer_metrics` needs BG/NBD and Gamma-Gamma parameters fitted on all
//! customers; the fits are cached per (as-of date, `orders` table version), so
//! repeated dashboard queries do not refit, and are refitted after each load.
//! When the data cannot support a fit (fewer than 3 customers, no repeat
//! buyers, no convergence) the model columns are NULL and a warning is logged.

pub mod cache;
mod options;
pub mod snapshot;
pub mod sql;

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session};
use datafusion::common::{Column, DataFusionError};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{MemTable, TableProvider, TableType};
use datafusion::error::Result as DFResult;
use datafusion::execution::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, col};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use tokio::sync::Mutex;
use tracing::{info, warn};

use cache::{CacheKey, ViewCache};
pub use options::CrmOptions;
pub use sql::{BgNbd, Fits, GammaGamma};

use crate::engine::LiveTable;
use crate::error::Result;

/// One built-in view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewKind {
    /// One row per customer with every metric.
    CustomerMetrics,
    /// Customers, revenue and CLV per segment and value class.
    SegmentSummary,
    /// Cohort month × months since first purchase.
    CohortRetention,
    /// Uplift against the control group per promotion.
    PromotionEffectiveness,
    /// Monthly KPIs per channel.
    KpiMonthly,
    /// Movement between segments across snapshots.
    SegmentTransitions,
}

impl ViewKind {
    /// Every view, in dependency order.
    pub const ALL: [ViewKind; 6] = [
        ViewKind::CustomerMetrics,
        ViewKind::SegmentSummary,
        ViewKind::CohortRetention,
        ViewKind::PromotionEffectiveness,
        ViewKind::KpiMonthly,
        ViewKind::SegmentTransitions,
    ];

    /// The SQL name.
    pub fn name(self) -> &'static str {
        match self {
            ViewKind::CustomerMetrics => "customer_metrics",
            ViewKind::SegmentSummary => "segment_summary",
            ViewKind::CohortRetention => "cohort_retention",
            ViewKind::PromotionEffectiveness => "promotion_effectiveness",
            ViewKind::KpiMonthly => "kpi_monthly",
            ViewKind::SegmentTransitions => "segment_transitions",
        }
    }

    /// The view's SQL for these settings and fits.
    pub fn sql(self, options: &CrmOptions, fits: &Fits) -> String {
        match self {
            ViewKind::CustomerMetrics => sql::customer_metrics(options, fits),
            ViewKind::SegmentSummary => sql::segment_summary(),
            ViewKind::CohortRetention => sql::cohort_retention(options),
            ViewKind::PromotionEffectiveness => sql::promotion_effectiveness(options),
            ViewKind::KpiMonthly => sql::kpi_monthly(options),
            ViewKind::SegmentTransitions => sql::segment_transitions(),
        }
    }

    /// The tables the view reads (directly or through another view).
    pub fn reads(self) -> &'static [&'static str] {
        match self {
            ViewKind::CustomerMetrics | ViewKind::SegmentSummary => {
                &["customers", "orders", "interactions"]
            }
            ViewKind::CohortRetention => &["orders"],
            ViewKind::PromotionEffectiveness => {
                &["promotions", "promotion_exposures", "orders", "order_items"]
            }
            ViewKind::KpiMonthly => &["orders", "interactions"],
            ViewKind::SegmentTransitions => &[snapshot::TABLE],
        }
    }

    fn needs_fits(self) -> bool {
        self == ViewKind::CustomerMetrics
    }
}

/// What the fits depend on: the as-of date and the `orders` table version.
type FitKey = (NaiveDate, Option<u64>);

/// The fits of the last (as-of date, orders version) asked for.
#[derive(Debug, Default)]
pub struct FitCache {
    last: Mutex<Option<(FitKey, Fits)>>,
}

impl FitCache {
    /// The fits for the session's settings, computed at most once per
    /// (as-of date, orders version).
    pub async fn get(&self, ctx: &SessionContext, options: &CrmOptions) -> DFResult<Fits> {
        let version = match ctx.table_provider("orders").await {
            Ok(p) => match p.downcast_ref::<LiveTable>() {
                Some(live) => live.version().await?,
                None => None,
            },
            Err(_) => None,
        };
        let key = (options.as_of, version);
        let mut last = self.last.lock().await;
        if let Some((k, fits)) = last.as_ref()
            && *k == key
            && version.is_some()
        {
            return Ok(*fits);
        }
        let fits = fit(ctx, options).await?;
        *last = Some((key, fits));
        Ok(fits)
    }
}

/// Fit BG/NBD and Gamma-Gamma on every customer's summary as of the date.
async fn fit(ctx: &SessionContext, options: &CrmOptions) -> DFResult<Fits> {
    let started = std::time::Instant::now();
    let summaries = ctx
        .sql(&sql::btyd_summaries(options))
        .await?
        .collect()
        .await?;
    // A private context: nothing registered here may reach the shared catalog.
    let fit_ctx = SessionContext::new();
    crmdb_udfs::register_all(&fit_ctx);
    let schema = match summaries.first() {
        Some(b) => b.schema(),
        None => return Ok(Fits::default()),
    };
    fit_ctx.register_table("s", Arc::new(MemTable::try_new(schema, vec![summaries])?))?;
    let bg = struct_fields(
        &fit_ctx,
        "SELECT bgnbd_fit(s['frequency'], s['recency'], s['t']) FROM s",
        &["r", "alpha", "a", "b"],
    )
    .await;
    let gg = struct_fields(
        &fit_ctx,
        "SELECT gamma_gamma_fit(s['frequency'], s['monetary_value']) FROM s",
        &["p", "q", "v"],
    )
    .await;
    let fits = Fits {
        bgnbd: match bg {
            Ok(v) => Some(BgNbd {
                r: v[0],
                alpha: v[1],
                a: v[2],
                b: v[3],
            }),
            Err(e) => {
                warn!(as_of = %options.as_of, "customer_metrics: no BG/NBD fit, p_alive, expected_purchases_90d and clv_12m are NULL: {e}");
                None
            }
        },
        gamma_gamma: match gg {
            Ok(v) => Some(GammaGamma {
                p: v[0],
                q: v[1],
                v: v[2],
            }),
            Err(e) => {
                warn!(as_of = %options.as_of, "customer_metrics: no Gamma-Gamma fit, clv_12m is NULL: {e}");
                None
            }
        },
    };
    info!(as_of = %options.as_of, elapsed_ms = started.elapsed().as_millis() as u64, ?fits, "fitted customer_metrics models");
    Ok(fits)
}

/// Run a one-row query returning a fit struct; the named Float64 fields, or
/// an error when the fit failed or did not converge.
async fn struct_fields(ctx: &SessionContext, query: &str, names: &[&str]) -> DFResult<Vec<f64>> {
    let batches: Vec<RecordBatch> = ctx.sql(query).await?.collect().await?;
    let batch = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .ok_or_else(|| DataFusionError::Execution("the fit returned no row".into()))?;
    let fit = batch.column(0).as_struct_opt().ok_or_else(|| {
        DataFusionError::Execution(format!("the fit returned {}", batch.column(0).data_type()))
    })?;
    if fit.is_null(0) {
        return Err(DataFusionError::Execution("no customers to fit".into()));
    }
    if let Some(converged) = fit.column_by_name("converged")
        && let Some(c) = converged.as_boolean_opt()
        && !c.value(0)
    {
        return Err(DataFusionError::Execution(
            "the optimiser did not converge".into(),
        ));
    }
    names
        .iter()
        .map(|name| {
            fit.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Float64Type>())
                .map(|c| c.value(0))
                .ok_or_else(|| DataFusionError::Execution(format!("the fit has no field {name}")))
        })
        .collect()
}

/// A built-in view, planned per scan for the querying session.
#[derive(Debug)]
pub struct SqlView {
    kind: ViewKind,
    schema: SchemaRef,
    definition: String,
    fits: Arc<FitCache>,
    results: Arc<ViewCache>,
}

impl SqlView {
    /// Plan the view once (with stand-in fits, which give the same types) to
    /// learn its schema.
    pub async fn new(
        kind: ViewKind,
        ctx: &SessionContext,
        defaults: &CrmOptions,
        fits: Arc<FitCache>,
        results: Arc<ViewCache>,
    ) -> Result<SqlView> {
        let stand_in = Fits {
            bgnbd: Some(BgNbd {
                r: 1.0,
                alpha: 1.0,
                a: 1.0,
                b: 1.0,
            }),
            gamma_gamma: Some(GammaGamma {
                p: 1.0,
                q: 2.0,
                v: 1.0,
            }),
        };
        let df = ctx.sql(&kind.sql(defaults, &stand_in)).await?;
        // Every column is declared nullable: the optimiser may plan a scan
        // differently from this stand-in, and a nullable declaration is
        // always true.
        let fields: Vec<_> = df
            .schema()
            .as_arrow()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let schema: SchemaRef = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
        Ok(SqlView {
            kind,
            schema,
            definition: kind.sql(defaults, &Fits::default()),
            fits,
            results,
        })
    }

    /// What a result of this view depends on in `ctx`, or `None` when it
    /// must not be cached: a table the view reads is not the store's own
    /// (a viewer's masked `customers`), or the cache is off.
    async fn cache_key(
        &self,
        ctx: &SessionContext,
        options: &CrmOptions,
        sql: &str,
    ) -> DFResult<Option<CacheKey>> {
        if !self.results.enabled() {
            return Ok(None);
        }
        let mut versions = Vec::with_capacity(self.kind.reads().len());
        for table in self.kind.reads() {
            let Ok(provider) = ctx.table_provider(*table).await else {
                return Ok(None);
            };
            let Some(live) = provider.downcast_ref::<LiveTable>() else {
                return Ok(None);
            };
            versions.push(live.version().await?);
        }
        Ok(Some(CacheKey {
            view: self.kind.name(),
            options: format!("{options:?}"),
            sql: sql.to_string(),
            versions,
        }))
    }

    /// A scan of a materialised result: its batches spread over the
    /// session's partitions, relabelled with the view's (all-nullable)
    /// schema. Filters and limits stay in the outer plan (they are
    /// declared inexact).
    fn scan_result(
        &self,
        state: &SessionState,
        batches: &[RecordBatch],
        projection: Option<&Vec<usize>>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let n = state.config().target_partitions().max(1);
        let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); n];
        for (i, batch) in batches.iter().enumerate() {
            partitions[i % n].push(RecordBatch::try_new(
                self.schema.clone(),
                batch.columns().to_vec(),
            )?);
        }
        Ok(MemorySourceConfig::try_new_exec(
            &partitions,
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

#[async_trait]
impl TableProvider for SqlView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.definition)
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, datafusion::logical_expr::LogicalPlan>> {
        None
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Applied on top of the view's own plan; the outer plan keeps them too.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("views need a SessionState".into()))?;
        let options = state
            .config_options()
            .extensions
            .get::<CrmOptions>()
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "view {} needs the crm.* settings; open the session through crmdb's Engine",
                    self.kind.name()
                ))
            })?;
        // The view's physical plan becomes part of the outer query's plan,
        // which the outer planner optimises as a whole; optimising it here
        // too would apply rules (join swaps, dynamic filters, sort removal)
        // twice.
        let inner = SessionStateBuilder::new_from_existing(state.clone())
            .with_physical_optimizer_rules(vec![])
            .build();
        let ctx = SessionContext::new_with_state(inner);
        // Queries that run on their own (the fits, a materialised result)
        // get the whole physical optimiser: without it the fit's scan of
        // `orders` ran in one partition (one core, as Delta hands over one
        // file group) with its filters not pushed into the Parquet reader.
        let whole = SessionContext::new_with_state(state.clone());
        let fits = if self.kind.needs_fits() {
            self.fits.get(&whole, &options).await?
        } else {
            Fits::default()
        };
        let sql = self.kind.sql(&options, &fits);
        if let Some(key) = self.cache_key(&ctx, &options, &sql).await? {
            // The whole result, planned and optimised on its own.
            let full = whole.clone();
            let batches = self
                .results
                .get_or_compute(self.kind, key, || async move {
                    full.sql(&sql).await?.collect().await
                })
                .await?;
            return self.scan_result(state, &batches, projection);
        }
        let mut df = ctx.sql(&sql).await?;
        for filter in filters {
            df = df.filter(unqualified(filter.clone())?)?;
        }
        if let Some(projection) = projection {
            let columns: Vec<Expr> = projection
                .iter()
                .map(|i| col(Column::new_unqualified(self.schema.field(*i).name())))
                .collect();
            df = df.select(columns)?;
        }
        if let Some(n) = limit {
            df = df.limit(0, Some(n))?;
        }
        df.create_physical_plan().await
    }
}

/// Strip table qualifiers: the outer query names the view, the view's own
/// plan does not.
fn unqualified(expr: Expr) -> DFResult<Expr> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    expr.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(Column::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

/// Register every view (and the `customer_snapshots` table they read) in
/// the shared schema. `ctx` is a session of the engine being built.
pub async fn register(
    ctx: &SessionContext,
    schema: &Arc<dyn SchemaProvider>,
    store: &crate::store::Store,
    defaults: &CrmOptions,
    results: Arc<ViewCache>,
) -> Result<()> {
    let fits = Arc::new(FitCache::default());
    for kind in ViewKind::ALL {
        if kind == ViewKind::SegmentTransitions {
            let metrics = schema
                .table(ViewKind::CustomerMetrics.name())
                .await?
                .map(|t| t.schema());
            if let Some(metrics) = metrics {
                let table = snapshot::open_or_create(store, &metrics).await?;
                schema.register_table(
                    snapshot::TABLE.to_string(),
                    Arc::new(LiveTable::new(table).await?),
                )?;
            }
        }
        let view = SqlView::new(kind, ctx, defaults, fits.clone(), results.clone()).await?;
        schema.register_table(kind.name().to_string(), Arc::new(view))?;
    }
    Ok(())
}

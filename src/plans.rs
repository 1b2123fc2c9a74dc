//! Plans kept for statements that come back with other constants.
//!
//! A dashboard or an application asks the same question again and again with
//! a different customer, store or date: `… WHERE c.customer_id = 42`, then
//! `= 97`. Planning such a statement (SQL to logical plan, the logical
//! optimizer, physical planning and its optimizer) costs more than running
//! it when the answer is a few rows: at 1 M customers the benchmark's
//! customer 360 lookup spent about 5.5 of its 8.4 ms planning.
//!
//! [`PlanCache`] keeps, per session, the plans of statement *shapes*. A
//! statement's shape is its text with every constant compared with a column
//! at the top level of a `WHERE`, `ON` or `HAVING` (`col = 42`,
//! `'2024-01-01' <= order_ts`, joined by `AND`/`OR`/`NOT`) turned into a
//! parameter; every other constant stays part of the shape. The first time a
//! shape is seen it is planned with parameters and optimised once. After that:
//!
//! - when the plan reads only canonical tables ([`LiveTable`]s) whose Delta
//!   versions have not moved, the physical plan itself is run again with the
//!   new values (its state reset, as DataFusion does for recursive queries).
//!   The values reach the plan through a parameter function that the Parquet
//!   reader folds into a constant when it opens a file, so row groups and
//!   pages are still pruned with statistics and the page index. Runtime
//!   filters (a hash join's build-side bounds fed to the probe-side scan,
//!   TopK) belong to one run, so the kept plan is made without them and each
//!   run wires fresh ones with DataFusion's own pass;
//! - otherwise (views with their own caches, a table that moved on, the plan
//!   already running) the optimised logical plan gets the values as literals
//!   and only physical planning runs.
//!
//! What is never kept: statements with functions that are not immutable
//! (`now()`, `random()`: their value would be frozen into the plan),
//! statements over tables outside `crm.public` (pg_catalog and
//! information_schema are rebuilt per query), constants whose parameter type
//! is not one a literal converts to exactly (a number compared with a text
//! column, `1.5` compared with an integer, a decimal with more digits than
//! the column): those statements are planned as usual, every time.
//!
//! The cache belongs to one session: its settings are part of the plans, so
//! the front end clears it whenever the session runs anything but a query
//! (`SET`, DDL, ...). A table or view replaced in the shared catalog is
//! noticed because the entry keeps the providers it was planned over.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{ParamValues, ScalarValue, TableReference};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DFResult;
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::{BinaryExpr, Placeholder, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule as _;
use datafusion::physical_optimizer::filter_pushdown::FilterPushdown;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream, execute_stream};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr as SqlExpr, JoinConstraint, JoinOperator, Query, SetExpr, Statement,
    UnaryOperator, Value, VisitMut, VisitorMut, visit_expressions,
};
use futures::StreamExt as _;

use crate::engine::{CATALOG, LiveTable, SCHEMA};

/// Shapes kept per session before the least recently used is dropped.
pub const DEFAULT_CAPACITY: usize = 64;

/// How a statement was run (see [`PlanCache::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Shapes planned and kept.
    pub planned: u64,
    /// Runs of a kept physical plan with new values.
    pub reused: u64,
    /// Runs of a kept logical plan, planned physically again.
    pub replanned: u64,
    /// Statements not eligible (planned as usual by the caller).
    pub passed: u64,
}

/// The plans of one session's statement shapes.
#[derive(Debug)]
pub struct PlanCache {
    capacity: usize,
    entries: Mutex<Entries>,
    planned: AtomicU64,
    reused: AtomicU64,
    replanned: AtomicU64,
    passed: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, (u64, Arc<Entry>)>,
    tick: u64,
}

#[derive(Debug)]
enum Entry {
    /// The shape cannot be kept; plan it as usual.
    Unsupported,
    Kept(Box<Kept>),
}

/// One shape's plans.
#[derive(Debug)]
struct Kept {
    /// The tables and views named in the statement, as planned.
    named: Vec<(TableReference, Arc<dyn TableProvider>)>,
    /// Parameter `$i+1` has type `types[i]`.
    types: Vec<DataType>,
    /// The optimised plan, with placeholders.
    logical: LogicalPlan,
    /// The result's schema as the client sees it.
    schema: SchemaRef,
    physical: Option<Reusable>,
}

/// A physical plan that takes its parameters from `slots`.
#[derive(Debug)]
struct Reusable {
    plan: Arc<dyn ExecutionPlan>,
    slots: Slots,
    /// The canonical tables scanned, at the versions the plan reads.
    tables: Vec<(Arc<dyn TableProvider>, Option<u64>)>,
    busy: Arc<AtomicBool>,
    /// Each run wires runtime filters (the session's settings give the plan
    /// some, and its scans are not already narrowed to one key).
    dynamic: bool,
}

/// A statement ready to stream.
pub struct Planned {
    /// The result schema (that of the logical plan, as `DataFrame` has it).
    pub schema: SchemaRef,
    /// The physical plan running (its metrics fill in as `stream` is read).
    pub plan: Arc<dyn ExecutionPlan>,
    pub stream: SendableRecordBatchStream,
}

impl Default for PlanCache {
    fn default() -> Self {
        PlanCache::new(DEFAULT_CAPACITY)
    }
}

impl PlanCache {
    /// An empty cache keeping at most `capacity` shapes.
    pub fn new(capacity: usize) -> PlanCache {
        PlanCache {
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
            planned: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            replanned: AtomicU64::new(0),
            passed: AtomicU64::new(0),
        }
    }

    /// Forget every shape (the session's settings or objects changed).
    pub fn clear(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.map.clear();
        }
    }

    /// Counters since the cache was made.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            planned: self.planned.load(Ordering::Relaxed),
            reused: self.reused.load(Ordering::Relaxed),
            replanned: self.replanned.load(Ordering::Relaxed),
            passed: self.passed.load(Ordering::Relaxed),
        }
    }

    /// Run `statement` (one parsed statement, as `ctx.sql` would read its
    /// text) through kept plans. `Ok(None)`: not eligible, or planning it
    /// with parameters failed; the caller plans it as usual, which also
    /// reports any error in the statement the usual way.
    pub async fn run(
        &self,
        ctx: &SessionContext,
        statement: &Statement,
    ) -> DFResult<Option<Planned>> {
        let Some(shape) = Shape::of(statement) else {
            self.passed.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        };
        let entry = self.get(&shape.key);
        let planned = match entry.as_deref() {
            Some(Entry::Unsupported) => None,
            Some(Entry::Kept(kept)) => match self.run_kept(ctx, kept, &shape).await? {
                Run::Done(planned) => Some(planned),
                Run::Stale => self.plan(ctx, shape).await?,
                Run::Values => None,
            },
            None => self.plan(ctx, shape).await?,
        };
        if planned.is_none() {
            self.passed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(planned)
    }

    fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let mut e = self.entries.lock().ok()?;
        e.tick += 1;
        let tick = e.tick;
        let (used, entry) = e.map.get_mut(key)?;
        *used = tick;
        Some(entry.clone())
    }

    fn put(&self, key: String, entry: Entry) {
        let Ok(mut e) = self.entries.lock() else {
            return;
        };
        if e.map.len() >= self.capacity && !e.map.contains_key(&key) {
            let oldest = e
                .map
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                e.map.remove(&k);
            }
        }
        e.tick += 1;
        let tick = e.tick;
        e.map.insert(key, (tick, Arc::new(entry)));
    }

    /// Run a kept shape with this statement's values.
    async fn run_kept(&self, ctx: &SessionContext, kept: &Kept, shape: &Shape) -> DFResult<Run> {
        let Some(values) = convert(&shape.values, &kept.types) else {
            return Ok(Run::Values);
        };
        for (name, provider) in &kept.named {
            match ctx.table_provider(name.clone()).await {
                Ok(p) if Arc::ptr_eq(&p, provider) => {}
                _ => return Ok(Run::Stale),
            }
        }
        if let Some(reusable) = &kept.physical
            && let Some(busy) = Busy::take(&reusable.busy)
        {
            if !reusable.unchanged().await? {
                tracing::debug!("a table moved on: planning the shape again");
                return Ok(Run::Stale);
            }
            self.reused.fetch_add(1, Ordering::Relaxed);
            return Ok(Run::Done(kept.rerun(ctx, reusable, busy, values)?));
        }
        tracing::debug!(
            kept = kept.physical.is_some(),
            "re-planning physically (plan not reusable or still running)"
        );
        self.replanned.fetch_add(1, Ordering::Relaxed);
        Ok(Run::Done(kept.replan(ctx, values).await?))
    }

    /// Plan a shape seen for the first time (or again after it went
    /// stale), keep it, and run it with this statement's values.
    async fn plan(&self, ctx: &SessionContext, shape: Shape) -> DFResult<Option<Planned>> {
        let state = ctx.state();
        let kept = match Kept::plan(&state, &shape).await {
            Ok(Some(kept)) => kept,
            // An error is the caller's own planning to report; with
            // parameters in place some shapes do not plan at all.
            Ok(None) | Err(_) => {
                self.put(shape.key, Entry::Unsupported);
                return Ok(None);
            }
        };
        let Some(values) = convert(&shape.values, &kept.types) else {
            // the shape is fine; these values need the usual coercion
            self.put(shape.key, Entry::Kept(Box::new(kept)));
            return Ok(None);
        };
        // (a new plan is not running yet: `take` always succeeds here)
        let running = kept
            .physical
            .as_ref()
            .and_then(|r| Busy::take(&r.busy).map(|busy| (r, busy)));
        let planned = match running {
            Some((reusable, busy)) => kept.rerun(ctx, reusable, busy, values)?,
            None => kept.replan(ctx, values).await?,
        };
        self.planned.fetch_add(1, Ordering::Relaxed);
        self.put(shape.key, Entry::Kept(Box::new(kept)));
        Ok(Some(planned))
    }
}

enum Run {
    Done(Planned),
    /// The shape must be planned again (a named table or view changed).
    Stale,
    /// These values do not convert exactly to the parameter types.
    Values,
}

impl Kept {
    /// Plan a shape; `None` when it cannot be kept.
    async fn plan(state: &SessionState, shape: &Shape) -> DFResult<Option<Kept>> {
        let dialect = state.config().options().sql_parser.dialect;
        let statement = state.sql_to_statement(&shape.key, &dialect)?;
        if !matches!(&statement, DFStatement::Statement(s) if matches!(**s, Statement::Query(_))) {
            return Ok(None);
        }
        let Some(schema) = state
            .catalog_list()
            .catalog(CATALOG)
            .and_then(|c| c.schema(SCHEMA))
        else {
            return Ok(None);
        };
        let mut named = Vec::new();
        let defaults = &state.config().options().catalog;
        for reference in state.resolve_table_references(&statement)? {
            let resolved = reference
                .clone()
                .resolve(&defaults.default_catalog, &defaults.default_schema);
            if *resolved.catalog != *CATALOG || *resolved.schema != *SCHEMA {
                return Ok(None);
            }
            let Some(provider) = schema.table(&resolved.table).await? else {
                return Ok(None);
            };
            named.push((reference, provider));
        }
        let plan = state.statement_to_plan(statement).await?;
        if !reads_only(&plan)? || !immutable(&plan)? {
            return Ok(None);
        }
        let types = plan.get_parameter_types()?;
        let mut ordered = Vec::with_capacity(shape.values.len());
        for i in 1..=shape.values.len() {
            match types.get(&format!("${i}")) {
                Some(Some(t)) if supported(&shape.values[i - 1], t) => ordered.push(t.clone()),
                _ => return Ok(None),
            }
        }
        if types.len() != ordered.len() {
            return Ok(None);
        }
        let logical = state.optimize(&plan)?;
        let schema = Arc::new(Schema::clone(logical.schema().as_arrow()));
        let physical = Reusable::plan(state, &logical, &ordered).await?;
        Ok(Some(Kept {
            named,
            types: ordered,
            logical,
            schema,
            physical,
        }))
    }
}

impl Kept {
    /// Run the kept physical plan with `values` (its state reset).
    fn rerun(
        &self,
        ctx: &SessionContext,
        reusable: &Reusable,
        busy: Busy,
        values: Vec<ScalarValue>,
    ) -> DFResult<Planned> {
        reusable.slots.set(values);
        let mut plan = reset_plan_states(reusable.plan.clone())?;
        if reusable.dynamic {
            let options = ctx.state_ref().read().config_options().clone();
            plan = wire_runtime_filters(plan, &options)?;
        }
        let stream = execute_stream(plan.clone(), ctx.task_ctx())?;
        Ok(Planned {
            schema: self.schema.clone(),
            plan,
            stream: hold(stream, busy),
        })
    }

    /// Plan the optimised logical plan physically with `values` as literals.
    async fn replan(&self, ctx: &SessionContext, values: Vec<ScalarValue>) -> DFResult<Planned> {
        let state = ctx.state();
        let values = ParamValues::List(values.into_iter().map(Into::into).collect());
        let plan = self.logical.clone().replace_params_with_values(&values)?;
        let physical = state
            .query_planner()
            .create_physical_plan(&plan, &state)
            .await?;
        Ok(Planned {
            schema: self.schema.clone(),
            stream: execute_stream(physical.clone(), ctx.task_ctx())?,
            plan: physical,
        })
    }
}

impl Reusable {
    /// The physical plan of `logical` with parameter functions in place of
    /// placeholders; `None` when it cannot be run twice safely.
    async fn plan(
        state: &SessionState,
        logical: &LogicalPlan,
        types: &[DataType],
    ) -> DFResult<Option<Reusable>> {
        // only canonical tables: their versions say when the files changed
        let mut tables: Vec<(Arc<dyn TableProvider>, Option<u64>)> = Vec::new();
        let mut other = false;
        logical.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                match datafusion::datasource::source_as_provider(&scan.source) {
                    Ok(p) if p.downcast_ref::<LiveTable>().is_some() => {
                        if !tables.iter().any(|(t, _)| Arc::ptr_eq(t, &p)) {
                            tables.push((p, None));
                        }
                    }
                    _ => other = true,
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if other {
            tracing::debug!("plan reads more than canonical tables: planned physically per run");
            return Ok(None);
        }
        for (provider, version) in &mut tables {
            if let Some(live) = provider.downcast_ref::<LiveTable>() {
                *version = live.version().await?;
            }
        }
        let slots = Slots::default();
        slots.set(
            types
                .iter()
                .map(ScalarValue::try_from)
                .collect::<DFResult<_>>()?,
        );
        let with_functions = with_parameter_functions(logical.clone(), &slots, types)?;
        // Runtime filters are wired between a join (or TopK) and a scan
        // once per plan, and a reset join does not feed its old filter: the
        // kept plan has none, each run wires fresh ones (`rerun`).
        let mut without = state.clone();
        let narrowed = narrowed_to_one_key(logical)?;
        if narrowed {
            // A few pages per table: spreading such a run over partitions
            // (repartitioning, two-phase aggregates, partitioned joins) costs
            // more than reading them, and a runtime filter has nothing left
            // to skip (see `dynamic` below).
            without
                .config_mut()
                .options_mut()
                .execution
                .target_partitions = 1;
        }
        let optimizer = &mut without.config_mut().options_mut().optimizer;
        optimizer.enable_dynamic_filter_pushdown = false;
        optimizer.enable_join_dynamic_filter_pushdown = false;
        optimizer.enable_topk_dynamic_filter_pushdown = false;
        optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        let plan = state
            .query_planner()
            .create_physical_plan(&with_functions, &without)
            .await?;
        if has_dynamic_filters(&plan)? {
            tracing::debug!("plan has runtime filters it cannot reset: planned physically per run");
            return Ok(None);
        }
        let dynamic = !narrowed && {
            let wired =
                wire_runtime_filters(reset_plan_states(plan.clone())?, state.config_options())?;
            has_dynamic_filters(&wired)?
        };
        Ok(Some(Reusable {
            dynamic,
            plan,
            slots,
            tables,
            busy: Arc::new(AtomicBool::new(false)),
        }))
    }

    /// The scanned tables are still at the versions planned.
    async fn unchanged(&self) -> DFResult<bool> {
        for (provider, version) in &self.tables {
            if let Some(live) = provider.downcast_ref::<LiveTable>()
                && live.version().await? != *version
            {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Marks a reusable plan as running; cleared when its run ends.
struct Busy(Arc<AtomicBool>);

impl Busy {
    /// `None` when the plan is running already (a stream not yet drained).
    fn take(flag: &Arc<AtomicBool>) -> Option<Busy> {
        (!flag.swap(true, Ordering::AcqRel)).then(|| Busy(flag.clone()))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// `stream`, keeping `busy` until it is dropped.
fn hold(stream: SendableRecordBatchStream, busy: Busy) -> SendableRecordBatchStream {
    let schema = stream.schema();
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        stream.map(move |batch| {
            let _held = &busy;
            batch
        }),
    ))
}

/// True when every table the plan scans is read for one value of the column
/// its files are sorted by (`customer_id = $1` over customers, orders,
/// interactions): statistics and the page index narrow each scan to a row
/// group and a page per column.
fn narrowed_to_one_key(plan: &LogicalPlan) -> DFResult<bool> {
    let mut scans = 0;
    let mut narrowed = true;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans += 1;
            let key =
                crate::store::schema::table(scan.table_name.table()).and_then(|d| d.cluster_by);
            if !key.is_some_and(|key| {
                scan.filters
                    .iter()
                    .flat_map(|f| split_conjunction(f))
                    .any(|f| equals_constant(f, key))
            }) {
                narrowed = false;
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(narrowed && scans > 0)
}

/// `e` is `column = constant` (a literal or a parameter), either way round.
fn equals_constant(e: &Expr, column: &str) -> bool {
    fn is_column(e: &Expr, name: &str) -> bool {
        match e {
            Expr::Column(c) => c.name == name,
            Expr::Cast(c) => is_column(&c.expr, name),
            _ => false,
        }
    }
    fn is_constant(e: &Expr) -> bool {
        match e {
            Expr::Literal(v, _) => !v.is_null(),
            Expr::Placeholder(_) => true,
            Expr::Cast(c) => is_constant(&c.expr),
            _ => false,
        }
    }
    matches!(e, Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right })
        if is_column(left, column) && is_constant(right)
            || is_column(right, column) && is_constant(left))
}

/// `plan` with the runtime filters the settings allow (joins and TopK
/// feeding their scans), as DataFusion's last optimizer passes add them.
fn wire_runtime_filters(
    plan: Arc<dyn ExecutionPlan>,
    options: &ConfigOptions,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    FilterPushdown::new_post_optimization().optimize(plan, options)
}

/// True when the plan has runtime filters.
fn has_dynamic_filters(plan: &Arc<dyn ExecutionPlan>) -> DFResult<bool> {
    let mut found = false;
    plan.apply(|node| {
        node.apply_expressions(&mut |expr| {
            expr.apply(|e| {
                if e.is::<DynamicFilterPhysicalExpr>() {
                    found = true;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(found)
}

/// The plan is a query (`SELECT … INTO` plans as DDL).
fn reads_only(plan: &LogicalPlan) -> DFResult<bool> {
    plan.exists(|node| {
        Ok(matches!(
            node,
            LogicalPlan::Ddl(_)
                | LogicalPlan::Dml(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::DescribeTable(_)
                | LogicalPlan::Extension(_)
        ))
    })
    .map(|found| !found)
}

/// No function in the plan may give another value for the same arguments.
fn immutable(plan: &LogicalPlan) -> DFResult<bool> {
    let mut ok = true;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility != Volatility::Immutable
                {
                    ok = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(ok)
}

/// `plan` with each placeholder `$i` replaced by `parameter(i)`, which reads
/// slot `i-1` (names kept, as `replace_params_with_values` keeps them).
fn with_parameter_functions(
    plan: LogicalPlan,
    slots: &Slots,
    types: &[DataType],
) -> DFResult<LogicalPlan> {
    let functions: Vec<Arc<ScalarUDF>> = types
        .iter()
        .enumerate()
        .map(|(index, t)| {
            Arc::new(ScalarUDF::new_from_impl(ParameterFunc {
                index,
                data_type: t.clone(),
                slots: slots.clone(),
                signature: Signature::exact(vec![DataType::Int64], Volatility::Stable),
            }))
        })
        .collect();
    plan.transform_up_with_subqueries(|node| {
        let preserver = NamePreserver::new(&node);
        node.map_expressions(|e| {
            if !e.exists(|e| Ok(matches!(e, Expr::Placeholder(_))))? {
                return Ok(Transformed::no(e));
            }
            let name = preserver.save(&e);
            let replaced = e.transform_up(|e| match e {
                Expr::Placeholder(Placeholder { id, .. }) => {
                    let index = id
                        .strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| n.checked_sub(1))
                        .filter(|i| *i < functions.len());
                    match index {
                        Some(i) => Ok(Transformed::yes(Expr::ScalarFunction(
                            ScalarFunction::new_udf(
                                functions[i].clone(),
                                vec![Expr::Literal(ScalarValue::Int64(Some(i as i64)), None)],
                            ),
                        ))),
                        None => datafusion::common::plan_err!("unknown parameter {id}"),
                    }
                }
                e => Ok(Transformed::no(e)),
            })?;
            Ok(replaced.update_data(|e| name.restore(e)))
        })?
        .map_data(|p| p.recompute_schema())
    })
    .map(|t| t.data)
}

/// The values of one run of a kept physical plan.
#[derive(Clone, Debug, Default)]
struct Slots(Arc<RwLock<Vec<ScalarValue>>>);

impl Slots {
    fn set(&self, values: Vec<ScalarValue>) {
        if let Ok(mut v) = self.0.write() {
            *v = values;
        }
    }

    fn get(&self, index: usize) -> Option<ScalarValue> {
        self.0.read().ok()?.get(index).cloned()
    }
}

impl PartialEq for Slots {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Slots {}

impl std::hash::Hash for Slots {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.0) as usize).hash(state);
    }
}

/// `parameter(i)`: the current value of a kept plan's parameter `i`. Stable,
/// not volatile, so the Parquet reader's predicate simplifier turns it into
/// a literal when it opens a file (and prunes with it); nothing folds it at
/// planning time, which runs before any value is set.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ParameterFunc {
    index: usize,
    data_type: DataType,
    slots: Slots,
    signature: Signature,
}

impl ScalarUDFImpl for ParameterFunc {
    fn name(&self) -> &str {
        "parameter"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DFResult<DataType> {
        Ok(self.data_type.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        match self.slots.get(self.index) {
            Some(v) => Ok(ColumnarValue::Scalar(v)),
            None => datafusion::common::internal_err!("parameter {} has no value", self.index),
        }
    }
}

/// A constant taken out of a statement.
#[derive(Clone, Debug, PartialEq)]
enum Constant {
    Number(String),
    Text(String),
}

/// A statement's shape (its text with parameters) and its constants.
#[derive(Debug)]
struct Shape {
    key: String,
    values: Vec<Constant>,
}

impl Shape {
    /// `None` unless `statement` is a query that reads (no `INSERT` in a
    /// CTE) and has no parameters of its own.
    fn of(statement: &Statement) -> Option<Shape> {
        let Statement::Query(_) = statement else {
            return None;
        };
        // `$1` in a simple query is an error the usual path reports
        let own = visit_expressions(statement, |e| match e {
            SqlExpr::Value(v) if matches!(v.value, Value::Placeholder(_)) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        });
        if own.is_break() {
            return None;
        }
        let mut statement = statement.clone();
        let mut v = Parameterise {
            values: Vec::new(),
            eligible: true,
        };
        let _ = statement.visit(&mut v);
        v.eligible.then(|| Shape {
            key: statement.to_string(),
            values: v.values,
        })
    }
}

struct Parameterise {
    values: Vec<Constant>,
    eligible: bool,
}

impl VisitorMut for Parameterise {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.body(&mut query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &mut Statement) -> ControlFlow<()> {
        // a data-changing statement nested in a query (`WITH … INSERT`)
        if !matches!(statement, Statement::Query(_)) {
            self.eligible = false;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl Parameterise {
    fn body(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::Select(select) => {
                for t in &mut select.from {
                    for join in &mut t.joins {
                        if let Some(JoinConstraint::On(e)) = constraint(&mut join.join_operator) {
                            self.predicate(e);
                        }
                    }
                }
                if let Some(e) = &mut select.selection {
                    self.predicate(e);
                }
                if let Some(e) = &mut select.having {
                    self.predicate(e);
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.body(left);
                self.body(right);
            }
            _ => {}
        }
    }

    /// Parameterise the comparisons at the top level of a predicate.
    fn predicate(&mut self, e: &mut SqlExpr) {
        match e {
            SqlExpr::Nested(inner) => self.predicate(inner),
            SqlExpr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => self.predicate(expr),
            SqlExpr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And | BinaryOperator::Or => {
                    self.predicate(left);
                    self.predicate(right);
                }
                BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq => {
                    if is_column(left) {
                        self.constant(right);
                    } else if is_column(right) {
                        self.constant(left);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Replace a number or text constant by the next parameter.
    fn constant(&mut self, e: &mut SqlExpr) {
        let SqlExpr::Value(v) = e else {
            return;
        };
        let constant = match &v.value {
            Value::Number(n, false) => Constant::Number(n.to_string()),
            Value::SingleQuotedString(s) => Constant::Text(s.clone()),
            _ => return,
        };
        self.values.push(constant);
        v.value = Value::Placeholder(format!("${}", self.values.len()));
    }
}

fn is_column(e: &SqlExpr) -> bool {
    matches!(e, SqlExpr::Identifier(_) | SqlExpr::CompoundIdentifier(_))
}

fn constraint(op: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match op {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// Whether a constant of this kind converts exactly to a parameter of type
/// `t` (the type DataFusion inferred from the column it is compared with).
fn supported(c: &Constant, t: &DataType) -> bool {
    match c {
        Constant::Number(_) => {
            t.is_integer() || matches!(t, DataType::Float64 | DataType::Decimal128(_, _))
        }
        Constant::Text(_) => matches!(
            t,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Date32
                | DataType::Timestamp(_, _)
        ),
    }
}

/// The values of `constants` as parameters of `types`; `None` when one does
/// not convert exactly (the statement is then planned as usual, with
/// DataFusion's own coercion of the literal).
fn convert(constants: &[Constant], types: &[DataType]) -> Option<Vec<ScalarValue>> {
    constants
        .iter()
        .zip(types)
        .map(|(c, t)| match c {
            Constant::Number(n) => number(n, t),
            Constant::Text(s) => match t {
                DataType::Utf8 => Some(ScalarValue::Utf8(Some(s.clone()))),
                DataType::LargeUtf8 => Some(ScalarValue::LargeUtf8(Some(s.clone()))),
                DataType::Utf8View => Some(ScalarValue::Utf8View(Some(s.clone()))),
                // as DataFusion casts a text literal compared with such a column
                _ => ScalarValue::Utf8(Some(s.clone())).cast_to(t).ok(),
            },
        })
        .collect()
}

fn number(n: &str, t: &DataType) -> Option<ScalarValue> {
    if t.is_integer() {
        // only integers written as such: `id = 1.0` keeps DataFusion's coercion
        if !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return ScalarValue::try_from_string(n.to_string(), t).ok();
    }
    match t {
        DataType::Float64 => n.parse::<f64>().ok().map(|f| ScalarValue::Float64(Some(f))),
        DataType::Decimal128(precision, scale) => decimal(n, *precision, *scale),
        _ => None,
    }
}

/// `n` as a decimal of exactly this precision and scale, or `None` when it
/// would lose digits.
fn decimal(n: &str, precision: u8, scale: i8) -> Option<ScalarValue> {
    if scale < 0 {
        return None;
    }
    let (whole, fraction) = n.split_once('.').unwrap_or((n, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > scale as usize {
        return None;
    }
    let digits = format!("{whole}{fraction:0<width$}", width = scale as usize);
    let digits = digits.trim_start_matches('0');
    if digits.len() > precision as usize {
        return None;
    }
    let value: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(ScalarValue::Decimal128(Some(value), precision, scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::Engine;
    use crate::ingest::{IngestOptions, ingest_bytes};
    use crate::store::Store;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::physical_plan::ExecutionPlanProperties as _;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use futures::TryStreamExt as _;

    const CUSTOMERS: &str = "customer_id,name,phone,email,gender,birth_date,city,signup_at,signup_channel,member_tier,marketing_consent,updated_at
1,Alice Smith,13812341234,alice@example.com,F,1990-01-02,Berlin,2024-01-01T10:00:00Z,web,gold,true,2024-01-01T10:00:00Z
2,Bob Jones,13900001111,bob@example.org,M,1985-05-06,Paris,2024-02-01T11:00:00Z,app,silver,false,2024-02-01T11:00:00Z
3,Carol White,,carol@example.net,F,,Rome,2024-03-01T12:00:00Z,store,,true,2024-03-01T12:00:00Z
";
    const ORDERS: &str =
        "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status
10,1,2024-04-01T09:30:00Z,web,s1,120.50,0.00,,completed
11,1,2024-05-02T10:00:00Z,app,s1,80.00,5.00,,completed
12,2,2024-05-03T11:15:00Z,store,s2,42.25,,,returned
13,3,2024-06-04T12:45:00Z,web,s3,10.00,,,completed
";

    /// The benchmark's customer 360 lookup, cut down.
    fn lookup(id: &str) -> String {
        format!(
            "SELECT c.customer_id, c.name, o.orders, o.revenue
FROM customers c
LEFT JOIN (SELECT customer_id,
    count(*) FILTER (WHERE status = 'completed') AS orders,
    sum(amount) FILTER (WHERE status = 'completed') AS revenue
  FROM orders WHERE customer_id = {id} GROUP BY customer_id) o ON o.customer_id = c.customer_id
WHERE c.customer_id = {id}"
        )
    }

    async fn engine() -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::init(&dir.path().join("data")).await.unwrap();
        let opts = IngestOptions::default();
        ingest_bytes(&store, "customers", CUSTOMERS.as_bytes(), &opts)
            .await
            .unwrap();
        ingest_bytes(&store, "orders", ORDERS.as_bytes(), &opts)
            .await
            .unwrap();
        let engine = Engine::open(store, Arc::new(Config::default()))
            .await
            .unwrap();
        (dir, engine)
    }

    fn statement(sql: &str) -> Statement {
        Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0)
    }

    /// The rows through the cache; `None` when it passes the statement on.
    async fn cached(cache: &PlanCache, ctx: &SessionContext, sql: &str) -> Option<String> {
        let planned = cache.run(ctx, &statement(sql)).await.unwrap()?;
        let batches: Vec<_> = planned.stream.try_collect().await.unwrap();
        Some(pretty_format_batches(&batches).unwrap().to_string())
    }

    async fn fresh(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn one_plan_answers_every_customer_like_a_fresh_plan() {
        let (_dir, engine) = engine().await;
        let ctx = engine.session();
        let cache = PlanCache::default();
        let alice = cached(&cache, &ctx, &lookup("1")).await.unwrap();
        assert_eq!(
            alice,
            "+-------------+-------------+--------+---------+\n\
             | customer_id | name        | orders | revenue |\n\
             +-------------+-------------+--------+---------+\n\
             | 1           | Alice Smith | 2      | 200.50  |\n\
             +-------------+-------------+--------+---------+"
        );
        for id in ["2", "3", "4", "1"] {
            let sql = lookup(id);
            assert_eq!(
                cached(&cache, &ctx, &sql).await.unwrap(),
                fresh(&ctx, &sql).await,
                "customer {id}"
            );
        }
        assert_eq!(cached(&cache, &ctx, &lookup("4")).await.unwrap(), "++\n++");
        let stats = cache.stats();
        assert_eq!((stats.planned, stats.passed), (1, 0));
        // no runtime join filters in this plan: the physical plan is rerun
        assert_eq!((stats.reused, stats.replanned), (5, 0));
    }

    #[tokio::test]
    async fn a_kept_scan_plan_is_run_again_and_still_prunes() {
        let (_dir, engine) = engine().await;
        let ctx = engine.session();
        let cache = PlanCache::default();
        let sql = |id: &str| {
            format!(
                "SELECT order_id, amount FROM orders WHERE customer_id = {id} ORDER BY order_id"
            )
        };
        assert_eq!(
            cached(&cache, &ctx, &sql("1")).await.unwrap(),
            "+----------+--------+\n\
             | order_id | amount |\n\
             +----------+--------+\n\
             | 10       | 120.50 |\n\
             | 11       | 80.00  |\n\
             +----------+--------+"
        );
        assert_eq!(
            cached(&cache, &ctx, &sql("3")).await.unwrap(),
            "+----------+--------+\n\
             | order_id | amount |\n\
             +----------+--------+\n\
             | 13       | 10.00  |\n\
             +----------+--------+"
        );
        // customer 99 is outside the file's customer_id range: the reader
        // got the value as a literal and skipped the file's row group. The
        // scan node is the same in every run, so its metrics add up: the
        // row group was read for customers 1 and 3, not for 99.
        let planned = cache
            .run(&ctx, &statement(&sql("99")))
            .await
            .unwrap()
            .unwrap();
        let batches: Vec<_> = planned.stream.try_collect().await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
        let mut pruned = None;
        planned
            .plan
            .apply(|node| {
                if node.name() == "DataSourceExec" {
                    pruned = node.metrics().and_then(|m| {
                        m.aggregate_by_name()
                            .iter()
                            .find(|m| m.value().name() == "row_groups_pruned_statistics")
                            .map(|m| m.value().to_string())
                    });
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(pruned.as_deref(), Some("3 total → 2 matched"));
        assert_eq!(
            cache.stats(),
            CacheStats {
                planned: 1,
                reused: 2,
                replanned: 0,
                passed: 0
            }
        );
    }

    #[tokio::test]
    async fn a_join_gets_fresh_runtime_filters_in_every_run() {
        let (_dir, engine) = engine().await;
        let ctx = engine.session();
        let cache = PlanCache::default();
        // the build side (customers by name) bounds the probe side (orders)
        // through a runtime filter; a filter left from Alice's run would
        // hide every order of the others
        let sql = |name: &str| {
            format!(
                "SELECT o.order_id FROM orders o JOIN customers c ON c.customer_id = o.customer_id \
                 WHERE c.name = '{name}' ORDER BY o.order_id"
            )
        };
        for (name, orders) in [
            ("Alice Smith", "| 10       |\n| 11       |"),
            ("Carol White", "| 13       |"),
            ("Bob Jones", "| 12       |"),
            ("Nobody", ""),
        ] {
            let planned = cache
                .run(&ctx, &statement(&sql(name)))
                .await
                .unwrap()
                .unwrap();
            assert!(has_dynamic_filters(&planned.plan).unwrap(), "{name}");
            let batches: Vec<_> = planned.stream.try_collect().await.unwrap();
            let got = pretty_format_batches(&batches).unwrap().to_string();
            assert_eq!(got, fresh(&ctx, &sql(name)).await, "{name}");
            let rows: Vec<&str> = got.lines().filter(|l| l.starts_with("| 1")).collect();
            assert_eq!(rows.join("\n"), orders, "{name}");
        }
        let stats = cache.stats();
        assert_eq!((stats.planned, stats.reused, stats.replanned), (1, 3, 0));
    }

    /// The most partitions any node of `plan` runs in.
    fn partitions(plan: &Arc<dyn ExecutionPlan>) -> usize {
        let mut most = 0;
        plan.apply(|node| {
            most = most.max(node.output_partitioning().partition_count());
            Ok(TreeNodeRecursion::Continue)
        })
        .unwrap();
        most
    }

    #[tokio::test]
    async fn a_lookup_of_one_key_runs_in_one_partition() {
        let (_dir, engine) = engine().await;
        let ctx = engine.session();
        ctx.sql("SET datafusion.execution.target_partitions = 4")
            .await
            .unwrap();
        let cache = PlanCache::default();
        let run = async |sql: &str| {
            let planned = cache.run(&ctx, &statement(sql)).await.unwrap().unwrap();
            let batches: Vec<_> = planned.stream.try_collect().await.unwrap();
            assert_eq!(
                pretty_format_batches(&batches).unwrap().to_string(),
                fresh(&ctx, sql).await,
                "{sql}"
            );
            (
                partitions(&planned.plan),
                has_dynamic_filters(&planned.plan).unwrap(),
            )
        };
        // every scan is narrowed to one customer_id, the column the files
        // are sorted by: one partition, and no runtime join filter (the
        // scans have nothing left for it to skip)
        assert_eq!(run(&lookup("2")).await, (1, false));
        assert_eq!(run(&lookup("1")).await, (1, false));
        assert_eq!(
            run("SELECT status, count(*) AS n FROM orders \
                 WHERE 3 = customer_id AND amount > 1 GROUP BY status ORDER BY status")
            .await
            .0,
            1
        );
        // a range of customers, another column, or one table not narrowed:
        // the session's partitions
        for sql in [
            "SELECT status, count(*) AS n FROM orders WHERE customer_id > 1 GROUP BY status ORDER BY status",
            "SELECT status, count(*) AS n FROM orders WHERE order_id = 12 GROUP BY status ORDER BY status",
            "SELECT o.status, count(*) AS n FROM customers c JOIN orders o \
             ON o.customer_id = c.customer_id WHERE c.customer_id = 2 OR c.name = 'Bob Jones' \
             GROUP BY o.status ORDER BY o.status",
        ] {
            assert_eq!(run(sql).await.0, 4, "{sql}");
        }
    }

    #[tokio::test]
    async fn a_load_after_planning_is_read_by_the_next_run() {
        let (_dir, engine) = engine().await;
        let ctx = engine.session();
        let cache = PlanCache::default();
        let sql = "SELECT count(*) AS n FROM orders WHERE customer_id = 3";
        let count = |s: String| s.lines().nth(3).unwrap_or_default().to_string();
        assert_eq!(count(cached(&cache, &ctx, sql).await.unwrap()), "| 1 |");
        ingest_bytes(
            engine.store(),
            "orders",
            b"order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status\n\
              14,3,2024-07-01T08:00:00Z,app,s3,15.00,,,completed\n",
            &IngestOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(count(cached(&cache, &ctx, sql).await.unwrap()), "| 2 |");
        assert_eq!(cache.stats().planned, 2, "{:?}", cache.stats());
    }

    #[tokio::test]
    async fn constants_that_do_not_convert_exactly_are_planned_as_usual() {
        let (_dir, engine) = engine().await;
        let ctx = engine.session();
        let cache = PlanCache::default();
        let above = |v: &str| format!("SELECT count(*) AS n FROM orders WHERE amount > {v}");
        // amount is decimal(12,2): 100.5 is exact, 100.505 is not
        let n = cached(&cache, &ctx, &above("100.5")).await.unwrap();
        assert_eq!(n, fresh(&ctx, &above("100.5")).await);
        assert!(n.contains("| 1 |"), "{n}");
        assert_eq!(cached(&cache, &ctx, &above("100.505")).await, None);
        assert_eq!(
            cached(&cache, &ctx, &above("80")).await.unwrap(),
            fresh(&ctx, &above("80")).await
        );
        let id = |v: &str| format!("SELECT count(*) AS n FROM orders WHERE customer_id = {v}");
        assert!(
            cached(&cache, &ctx, &id("1"))
                .await
                .unwrap()
                .contains("| 2 |")
        );
        assert_eq!(cached(&cache, &ctx, &id("1.0")).await, None);
        assert_eq!(
            cached(&cache, &ctx, &id("99999999999999999999")).await,
            None
        );
        // text compared with a timestamp column converts as DataFusion casts it
        let since = |v: &str| format!("SELECT count(*) AS n FROM orders WHERE order_ts >= '{v}'");
        for v in ["2024-05-01", "2024-05-03T00:00:00Z", "2024-06-04 12:45:00"] {
            assert_eq!(
                cached(&cache, &ctx, &since(v)).await.unwrap(),
                fresh(&ctx, &since(v)).await,
                "{v}"
            );
        }
        assert_eq!(cache.stats().passed, 3);
    }

    #[tokio::test]
    async fn statements_whose_plans_cannot_be_kept_are_passed_on() {
        let (_dir, engine) = engine().await;
        let ctx = engine.session();
        let cache = PlanCache::default();
        for sql in [
            // now() would be frozen into the plan
            "SELECT count(*) FROM orders WHERE order_ts < now() AND customer_id = 1",
            "SELECT random() FROM orders WHERE customer_id = 1",
            // rebuilt per query
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'",
            // creates a table
            "SELECT order_id INTO copied FROM orders WHERE customer_id = 1",
            // not a query
            "SET datafusion.execution.batch_size = 100",
            // a number compared with a text column: DataFusion's coercion decides
            "SELECT count(*) FROM orders WHERE status = 1",
            // an unknown column is the usual planner's error to report
            "SELECT count(*) FROM orders WHERE no_such_column = 1",
        ] {
            assert!(
                cache.run(&ctx, &statement(sql)).await.unwrap().is_none(),
                "{sql}"
            );
        }
        assert!(
            ctx.table_provider("copied").await.is_err(),
            "SELECT INTO ran"
        );
        assert_eq!(cache.stats().passed, 7);
        assert_eq!(cache.stats().planned, 0);
    }

    #[test]
    fn the_shape_takes_constants_compared_with_columns_in_where_on_and_having() {
        let shape = Shape::of(&statement(
            "SELECT a, 'x' AS k, count(*) FILTER (WHERE s = 'done') FROM t JOIN u ON u.id = t.id AND u.kind = 'vip' \
             WHERE (t.id = 42 OR NOT 7 < t.n) AND t.d >= '2024-01-01' AND lower(t.c) = 'y' \
             GROUP BY a HAVING a <> 3 LIMIT 10",
        ))
        .unwrap();
        assert_eq!(
            shape.key,
            "SELECT a, 'x' AS k, count(*) FILTER (WHERE s = 'done') FROM t JOIN u ON u.id = t.id AND u.kind = $1 \
             WHERE (t.id = $2 OR NOT $3 < t.n) AND t.d >= $4 AND lower(t.c) = 'y' GROUP BY a HAVING a <> $5 LIMIT 10"
        );
        assert_eq!(
            shape.values,
            vec![
                Constant::Text("vip".into()),
                Constant::Number("42".into()),
                Constant::Number("7".into()),
                Constant::Text("2024-01-01".into()),
                Constant::Number("3".into()),
            ]
        );
        // subqueries and CTEs have their own predicates
        let shape = Shape::of(&statement(
            "WITH o AS (SELECT * FROM orders WHERE customer_id = 5) \
             SELECT * FROM o WHERE amount > (SELECT max(amount) FROM orders WHERE customer_id = 6)",
        ))
        .unwrap();
        assert_eq!(
            shape.values,
            vec![Constant::Number("5".into()), Constant::Number("6".into())]
        );
        assert!(shape.key.contains("customer_id = $1") && shape.key.contains("customer_id = $2"));
        // a statement with its own parameters, or not a query: no shape
        assert!(Shape::of(&statement("SELECT * FROM t WHERE id = $1")).is_none());
        assert!(Shape::of(&statement("INSERT INTO t VALUES (1)")).is_none());
        assert!(
            Shape::of(&statement(
                "WITH x AS (INSERT INTO t VALUES (1) RETURNING id) SELECT * FROM x"
            ))
            .is_none()
        );
    }

    #[test]
    fn decimals_convert_only_without_losing_digits() {
        assert_eq!(
            decimal("100.5", 12, 2),
            Some(ScalarValue::Decimal128(Some(10050), 12, 2))
        );
        assert_eq!(
            decimal("100.500", 12, 2),
            Some(ScalarValue::Decimal128(Some(10050), 12, 2))
        );
        assert_eq!(
            decimal("7", 12, 2),
            Some(ScalarValue::Decimal128(Some(700), 12, 2))
        );
        assert_eq!(
            decimal(".25", 12, 2),
            Some(ScalarValue::Decimal128(Some(25), 12, 2))
        );
        assert_eq!(
            decimal("0", 12, 2),
            Some(ScalarValue::Decimal128(Some(0), 12, 2))
        );
        assert_eq!(decimal("100.505", 12, 2), None);
        assert_eq!(decimal("12345678901", 12, 2), None);
        assert_eq!(decimal("1e3", 12, 2), None);
        assert_eq!(decimal(".", 12, 2), None);
        assert_eq!(number("-1", &DataType::Int64), None);
        assert_eq!(
            number("42", &DataType::Int32),
            Some(ScalarValue::Int32(Some(42)))
        );
        assert_eq!(number("3000000000", &DataType::Int32), None);
    }
}

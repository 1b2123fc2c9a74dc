//! SQL rewrites applied to the client's text before datafusion-postgres
//! parses it, for PostgreSQL behaviour DataFusion lacks:
//! - `to_char` / `to_timestamp` / `to_date` with a literal PostgreSQL format
//!   (`'YYYY-MM-DD HH24:MI:SS.US'`) get the equivalent chrono format
//!   (DataFusion would otherwise fail, or for `to_char` silently print the
//!   pattern itself);
//! - unaliased `current_user` / `session_user` / `user` in a select list get
//!   their own names as aliases (the library renames all of them to
//!   `session_user`, which made `SELECT current_user, session_user` fail);
//! - `x LIKE p ESCAPE 'e'` (SQLAlchemy sends `ESCAPE '/'`, often with a bound
//!   pattern) becomes `x LIKE like_escape(p, 'e')`, the backslash-escaped
//!   pattern DataFusion supports;
//! - the set-returning `generate_subscripts(…)` and
//!   `information_schema._pg_expandarray(…)` become `unnest(…)` of their
//!   array-valued versions ([`super::srf`]);
//! - `(expr).field`, PostgreSQL's field access on a composite value, becomes
//!   `(expr)['field']`;
//! - a correlated scalar subquery over pg_catalog tables nested inside a
//!   select-list expression (SQLAlchemy looks up column defaults, identity
//!   options and collations with `CASE WHEN … THEN (SELECT … WHERE
//!   attrelid = outer.attrelid) END`) becomes NULL: DataFusion cannot plan a
//!   subquery under CASE, and crmdb's columns have no defaults, identity or
//!   collation, so NULL is the answer PostgreSQL gives. Subqueries reading
//!   data tables are left alone (an error, never a wrong answer).
//!
//! A statement that does not parse here is passed on unchanged, so the
//! library's parser reports the error; one that needs no rewrite is passed on
//! as the client wrote it.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, BinaryOperator, CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, ObjectNamePart, OrderByKind, Query,
    SelectItem, SetExpr, Statement, Subscript, TableAlias, TableFactor, Value, ValueWithSpan,
    VisitorMut, visit_expressions, visit_expressions_mut, visit_statements_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::srf::ARRAY_VALUED_SRFS;

/// Stack size of the threads that parse and plan SQL (crmdb's runtime).
pub const PLANNER_STACK_BYTES: usize = 64 << 20;

/// Most binary operators one statement may have. A chain such as
/// `1 + 1 + … + 1` parses without recursion but becomes a tree as deep as it
/// is long, which DataFusion's planner and the rewrites walk recursively;
/// past this the statement is refused (SQLSTATE 54001) instead of
/// overflowing the stack and aborting the server. `IN (…)` lists do not
/// count: they are flat.
pub const MAX_OPERATORS: usize = 2_000;

/// Longest statement text accepted, in bytes. Dashboards send kilobytes;
/// a 100 MB literal is refused instead of being parsed and planned.
pub const MAX_STATEMENT_BYTES: usize = 16 << 20;

/// `Err` with the reason when `sql` is longer than [`MAX_STATEMENT_BYTES`]
/// or has a statement with more binary operators than [`MAX_OPERATORS`].
/// Counts tokens, without building the tree.
pub fn check_complexity(sql: &str) -> Result<(), String> {
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    if sql.len() > MAX_STATEMENT_BYTES {
        return Err(format!(
            "statement too large: {} bytes, at most {} MiB (load data with COPY … FROM STDIN or crmdb ingest)",
            sql.len(),
            MAX_STATEMENT_BYTES >> 20
        ));
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        // the parser reports what is wrong
        return Ok(());
    };
    // Per statement: a script of many small statements is not one deep tree.
    let (mut operators, mut in_statement) = (0, 0);
    for t in &tokens {
        let counts = match t {
            Token::SemiColon => {
                in_statement = 0;
                false
            }
            Token::Plus
            | Token::Minus
            | Token::Mul
            | Token::Div
            | Token::Mod
            | Token::StringConcat
            | Token::Eq
            | Token::Neq
            | Token::Lt
            | Token::Gt
            | Token::LtEq
            | Token::GtEq
            | Token::Caret => true,
            Token::Word(w) => {
                w.quote_style.is_none()
                    && (w.value.eq_ignore_ascii_case("and") || w.value.eq_ignore_ascii_case("or"))
            }
            _ => false,
        };
        if counts {
            in_statement += 1;
            operators = operators.max(in_statement);
        }
    }
    if operators > MAX_OPERATORS {
        return Err(format!(
            "statement too complex: {operators} operators, at most {MAX_OPERATORS} (use IN (…) lists or a join for long filters)"
        ));
    }
    Ok(())
}

/// Rewrite `sql` if it needs it; `None` when nothing changed.
pub fn rewrite(sql: &str) -> Option<String> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut changed = false;
    // expressions first: `ARRAY(SELECT …)` becomes a subquery the select-list
    // pass may then recognise as a correlated catalog lookup
    let _ = visit_expressions_mut(&mut statements, |e: &mut Expr| {
        changed |= rewrite_expr(e);
        ControlFlow::<()>::Continue(())
    });
    let _ = visit_statements_mut(&mut statements, |s: &mut Statement| {
        let mut v = SelectLists {
            changed: &mut changed,
        };
        let _ = s.visit(&mut v);
        ControlFlow::<()>::Continue(())
    });
    if !changed {
        return None;
    }
    Some(
        statements
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// The expression-level rewrites (visited bottom-up); true when `e` changed.
fn rewrite_expr(e: &mut Expr) -> bool {
    match e {
        Expr::Function(f) => {
            if translate_format(f) {
                return true;
            }
            if let Some(srf) = array_valued_srf(f) {
                *e = call("unnest", vec![srf]);
                return true;
            }
            if unnests_reloptions(f) {
                // `ARRAY(SELECT 'toast.' || x FROM unnest(tc.reloptions) x)`
                // (psql `\d+`): reloptions are always NULL in crmdb (no
                // storage options, no TOAST tables), so is the array
                *e = Expr::value(Value::Null);
                return true;
            }
            if let Some(q) = array_subquery(f) {
                *e = Expr::Subquery(Box::new(q));
                return true;
            }
            false
        }
        Expr::Like {
            escape_char: escape @ Some(_),
            pattern,
            ..
        }
        | Expr::ILike {
            escape_char: escape @ Some(_),
            pattern,
            ..
        } => {
            let Some(esc) = escape.take() else {
                return false;
            };
            if matches!(&esc.value, Value::SingleQuotedString(s) if s == "\\") {
                *escape = Some(esc);
                return false;
            }
            let p = std::mem::replace(pattern.as_mut(), Expr::value(Value::Null));
            **pattern = call("like_escape", vec![p, Expr::Value(esc)]);
            true
        }
        Expr::InSubquery {
            expr,
            subquery,
            negated,
        } if is_search_path_lookup(subquery) => {
            // `current_user` stands for "$user", as PostgreSQL resolves it
            let list = vec![
                Expr::Function(Function {
                    args: FunctionArguments::None,
                    ..function_named("current_user")
                }),
                Expr::value(Value::SingleQuotedString("public".into())),
            ];
            *e = Expr::InList {
                expr: expr.clone(),
                list,
                negated: *negated,
            };
            true
        }
        Expr::CompoundFieldAccess { access_chain, .. } => {
            let mut changed = false;
            for access in access_chain.iter_mut() {
                if let AccessExpr::Dot(Expr::Identifier(field)) = access {
                    let name = match field.quote_style {
                        Some(_) => field.value.clone(),
                        None => field.value.to_ascii_lowercase(),
                    };
                    *access = AccessExpr::Subscript(Subscript::Index {
                        index: Expr::value(Value::SingleQuotedString(name)),
                    });
                    changed = true;
                }
            }
            changed
        }
        _ => false,
    }
}

/// The schemas of the search path, as Grafana computes them:
/// `SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
/// FROM generate_series(…) AS i, string_to_array(current_setting('search_path'), ',') s`.
/// DataFusion cannot run an IN subquery inside a select-list CASE, so
/// `x IN (that)` becomes `x IN (current_user, 'public')`, the search path
/// every crmdb session has (crm.public is the only schema with tables).
fn is_search_path_lookup(q: &Query) -> bool {
    let text = q.to_string().to_ascii_lowercase();
    text.contains("current_setting('search_path')")
        && text.contains("string_to_array")
        && text.contains("generate_series")
        && text.contains("$user")
}

fn function_named(name: &str) -> Function {
    Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::None,
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }
}

/// `name(args)` as an expression.
fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// `generate_subscripts(…)` / `information_schema._pg_expandarray(…)`: the
/// unqualified call of the array-valued version, for `unnest`.
fn array_valued_srf(f: &Function) -> Option<Expr> {
    let last = match f.name.0.last()? {
        ObjectNamePart::Identifier(id) => id.value.to_ascii_lowercase(),
        _ => return None,
    };
    if !ARRAY_VALUED_SRFS.contains(&last.as_str()) {
        return None;
    }
    let mut srf = f.clone();
    srf.name = ObjectName::from(vec![Ident::new(last)]);
    Some(Expr::Function(srf))
}

/// `ARRAY(SELECT … FROM unnest(<rel>.reloptions) …)`.
fn unnests_reloptions(f: &Function) -> bool {
    let [ObjectNamePart::Identifier(id)] = f.name.0.as_slice() else {
        return false;
    };
    if !id.value.eq_ignore_ascii_case("array") {
        return false;
    }
    let FunctionArguments::Subquery(q) = &f.args else {
        return false;
    };
    let SetExpr::Select(select) = q.body.as_ref() else {
        return false;
    };
    let [from] = select.from.as_slice() else {
        return false;
    };
    let TableFactor::Table {
        name,
        args: Some(args),
        ..
    } = &from.relation
    else {
        return false;
    };
    let is_unnest = matches!(name.0.last(), Some(ObjectNamePart::Identifier(n)) if n.value.eq_ignore_ascii_case("unnest"));
    let arg = args
        .args
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    is_unnest && (arg == "reloptions" || arg.ends_with(".reloptions"))
}

/// `ARRAY(SELECT x FROM …)` (psql's `\du` lists role memberships with it),
/// which DataFusion cannot plan: the scalar subquery
/// `(SELECT array_agg(x) FROM …)`. The one difference: no rows give NULL,
/// not an empty array.
fn array_subquery(f: &Function) -> Option<Query> {
    let [ObjectNamePart::Identifier(id)] = f.name.0.as_slice() else {
        return None;
    };
    if !id.value.eq_ignore_ascii_case("array") {
        return None;
    }
    let FunctionArguments::Subquery(q) = &f.args else {
        return None;
    };
    let mut q = (**q).clone();
    let SetExpr::Select(select) = q.body.as_mut() else {
        return None;
    };
    let [item] = select.projection.as_mut_slice() else {
        return None;
    };
    let expr = match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
        _ => return None,
    };
    let inner = std::mem::replace(expr, Expr::value(Value::Null));
    *expr = call("array_agg", vec![inner]);
    Some(q)
}

/// A subquery in ORDER BY (Grafana sorts tables on the search path first
/// with `ORDER BY CASE WHEN schema IN (SELECT …) THEN 0 ELSE 1 END`), which
/// DataFusion cannot plan in a sort: the expression is computed as a hidden
/// column of the select and sorted on outside it,
/// `SELECT a, b FROM (SELECT a, b, <expr> AS __crmdb_sort_1 …) AS __crmdb_sorted
/// ORDER BY __crmdb_sort_1`. Only for a plain select whose items all have
/// names (aliases or columns).
fn sort_subqueries_into_projection(query: &Query) -> Option<Query> {
    let order = query.order_by.as_ref()?;
    let OrderByKind::Expressions(exprs) = &order.kind else {
        return None;
    };
    let has_subquery = |e: &Expr| {
        let mut found = false;
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x: &Expr| {
            if matches!(
                x,
                Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. }
            ) {
                found = true;
            }
            ControlFlow::<()>::Continue(())
        });
        found
    };
    if !exprs.iter().any(|o| has_subquery(&o.expr)) {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if select.distinct.is_some() {
        return None;
    }
    let mut names = Vec::with_capacity(select.projection.len());
    for item in &select.projection {
        names.push(match item {
            SelectItem::ExprWithAlias { alias, .. } => alias.clone(),
            SelectItem::UnnamedExpr(Expr::Identifier(id)) => id.clone(),
            SelectItem::UnnamedExpr(Expr::CompoundIdentifier(ids)) => ids.last()?.clone(),
            _ => return None,
        });
    }
    let mut inner = (**select).clone();
    let mut outer_order = Vec::with_capacity(exprs.len());
    for (k, o) in exprs.iter().enumerate() {
        if has_subquery(&o.expr) {
            let hidden = Ident::new(format!("__crmdb_sort_{}", k + 1));
            inner.projection.push(SelectItem::ExprWithAlias {
                expr: o.expr.clone(),
                alias: hidden.clone(),
            });
            outer_order.push(format!("{hidden} {}", o.options));
        } else {
            outer_order.push(o.to_string());
        }
    }
    let with = query
        .with
        .as_ref()
        .map(|w| format!("{w} "))
        .unwrap_or_default();
    let limit = query
        .limit_clause
        .as_ref()
        .map(|l| l.to_string())
        .unwrap_or_default();
    let sql = format!(
        "{with}SELECT {} FROM ({inner}) AS __crmdb_sorted ORDER BY {}{limit}",
        names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        outer_order.join(", ")
    );
    match Parser::parse_sql(&PostgreSqlDialect {}, &sql).ok()?.pop()? {
        Statement::Query(q) => Some(*q),
        _ => None,
    }
}

/// `information_schema.columns` as PostgreSQL reports it: DataFusion's
/// table says `Int64` / `Decimal128(18, 2)` in `data_type` and counts
/// `ordinal_position` from 0; BI tools (Grafana's query builder, Superset)
/// read both. The reference becomes a derived table over the catalog's own
/// view with `pg_data_type(data_type)` and `ordinal_position + 1`. Only the
/// unqualified-catalog form the tools send (`information_schema.columns`)
/// is rewritten, which keeps the inner, catalog-qualified reference as is.
fn information_schema_columns(factor: &TableFactor) -> Option<TableFactor> {
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = factor
    else {
        return None;
    };
    let [
        ObjectNamePart::Identifier(schema),
        ObjectNamePart::Identifier(table),
    ] = name.0.as_slice()
    else {
        return None;
    };
    if !schema.value.eq_ignore_ascii_case("information_schema")
        || !table.value.eq_ignore_ascii_case("columns")
    {
        return None;
    }
    let sql = "SELECT table_catalog, table_schema, table_name, column_name, \
        ordinal_position + 1 AS ordinal_position, column_default, is_nullable, \
        pg_data_type(data_type) AS data_type, character_maximum_length, \
        character_octet_length, numeric_precision, numeric_precision_radix, numeric_scale, \
        datetime_precision, interval_type FROM crm.information_schema.columns";
    let Statement::Query(query) = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?.pop()? else {
        return None;
    };
    Some(TableFactor::Derived {
        lateral: false,
        subquery: query,
        alias: Some(alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: Ident::new("columns"),
            columns: vec![],
            at: None,
        })),
        sample: None,
    })
}

/// Scalar functions PostgreSQL allows in FROM (one row, one column named
/// after the alias) that DataFusion only knows as scalar functions.
const SCALAR_FUNCTIONS_IN_FROM: &[&str] = &["string_to_array", "current_schemas"];

/// PostgreSQL names the single column of a function in FROM after the alias:
/// `generate_series(1, 3) AS i` has a column `i` (DataFusion's is `value`),
/// and a scalar function in FROM is a one-row table (Grafana looks up the
/// search path with `FROM generate_series(…) AS i, string_to_array(…) s`).
/// Both become derived tables: `(SELECT value AS i FROM generate_series(…)) AS i`
/// and `(SELECT string_to_array(…) AS s) AS s`.
fn function_in_from(factor: &TableFactor) -> Option<TableFactor> {
    let TableFactor::Table {
        name,
        alias: Some(alias),
        args: Some(args),
        with_ordinality: false,
        ..
    } = factor
    else {
        return None;
    };
    if !alias.columns.is_empty() || args.settings.is_some() {
        return None;
    }
    // Unqualified names only: psql's catalog queries call
    // `pg_catalog.generate_series(…) s`, and datafusion-pg-catalog replaces
    // those whole queries by matching their exact text.
    let [ObjectNamePart::Identifier(id)] = name.0.as_slice() else {
        return None;
    };
    let function = id.value.to_ascii_lowercase();
    let call = format!(
        "{name}({})",
        args.args
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let alias_name = &alias.name;
    let subquery = if function == "generate_series" {
        format!("SELECT value AS {alias_name} FROM {call}")
    } else if SCALAR_FUNCTIONS_IN_FROM.contains(&function.as_str()) {
        format!("SELECT {call} AS {alias_name}")
    } else {
        return None;
    };
    let statement = Parser::parse_sql(&PostgreSqlDialect {}, &subquery)
        .ok()?
        .pop()?;
    let Statement::Query(query) = statement else {
        return None;
    };
    Some(TableFactor::Derived {
        lateral: false,
        subquery: query,
        alias: Some(alias.clone()),
        sample: None,
    })
}

use datafusion::sql::sqlparser::ast::VisitMut;

/// The select-list rewrites, applied to every query block.
struct SelectLists<'a> {
    changed: &'a mut bool,
}

impl VisitorMut for SelectLists<'_> {
    type Break = ();
    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let Some(derived) = information_schema_columns(factor) {
            *factor = derived;
            *self.changed = true;
            return ControlFlow::Continue(());
        }
        if let Some(derived) = function_in_from(factor) {
            *factor = derived;
            *self.changed = true;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(q) = sort_subqueries_into_projection(query) {
            *query = q;
            *self.changed = true;
        }
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                *self.changed |= alias_user(item);
                let expr = match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                    _ => continue,
                };
                if matches!(expr, Expr::Subquery(_)) {
                    // datafusion-postgres handles a subquery that is the whole item
                    continue;
                }
                let _ = visit_expressions_mut(expr, |e: &mut Expr| {
                    if let Expr::Subquery(q) = e
                        && is_correlated_catalog_lookup(q)
                    {
                        *e = null_keeping_placeholders(q);
                        *self.changed = true;
                    }
                    ControlFlow::<()>::Continue(())
                });
            }
        }
        ControlFlow::Continue(())
    }
}

/// NULL standing in for `query`, still mentioning its placeholders: the
/// server numbers a prepared statement's parameters by the placeholders left
/// in the plan, so dropping `$3` would shift the type of every later one
/// (SQLAlchemy binds `$10` as an integer after eight strings in the
/// subqueries it sends). `CASE WHEN p1 IS NULL AND … THEN NULL END` keeps
/// each placeholder with its cast.
fn null_keeping_placeholders(query: &Query) -> Expr {
    let mut kept: Vec<Expr> = Vec::new();
    let _ = visit_expressions(query, |e: &Expr| {
        match e {
            Expr::Cast { expr, .. } if matches!(expr.as_ref(), Expr::Value(v) if matches!(v.value, Value::Placeholder(_))) =>
            {
                kept.push(e.clone());
            }
            Expr::Value(v)
                if matches!(v.value, Value::Placeholder(_))
                    && !kept
                        .iter()
                        .any(|k| matches!(k, Expr::Cast { expr, .. } if expr.as_ref() == e)) =>
            {
                kept.push(e.clone());
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    let null = Expr::value(Value::Null);
    let Some(condition) = kept
        .into_iter()
        .map(|p| Expr::IsNull(Box::new(p)))
        .reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        })
    else {
        return null;
    };
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen {
            condition,
            result: null.clone(),
        }],
        else_result: None,
    }
}

/// `current_user` → `current_user AS "current_user"` (and the like).
fn alias_user(item: &mut SelectItem) -> bool {
    let SelectItem::UnnamedExpr(Expr::Function(f)) = item else {
        return false;
    };
    if !matches!(f.args, FunctionArguments::None) || f.name.0.len() != 1 {
        return false;
    }
    let name = f.name.to_string().to_ascii_lowercase();
    if !["current_user", "session_user", "user", "current_role"].contains(&name.as_str()) {
        return false;
    }
    *item = SelectItem::ExprWithAlias {
        expr: Expr::Function(f.clone()),
        alias: Ident::with_quote('"', name),
    };
    true
}

/// A scalar subquery that reads only pg_catalog / information_schema tables
/// and refers to a table of the enclosing query.
fn is_correlated_catalog_lookup(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let mut own = HashSet::new();
    for from in &select.from {
        for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation))
        {
            let TableFactor::Table {
                name,
                alias,
                args: None,
                ..
            } = factor
            else {
                return false;
            };
            let parts: Vec<String> = name
                .0
                .iter()
                .filter_map(|p| match p {
                    ObjectNamePart::Identifier(id) => Some(id.value.to_ascii_lowercase()),
                    _ => None,
                })
                .collect();
            let catalog = match parts.as_slice() {
                [schema, _] => schema == "pg_catalog" || schema == "information_schema",
                [table] => table.starts_with("pg_"),
                _ => false,
            };
            if !catalog {
                return false;
            }
            own.extend(parts.last().cloned());
            own.extend(alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()));
        }
    }
    if own.is_empty() {
        return false;
    }
    let mut correlated = false;
    let _ = visit_expressions(select.as_ref(), |e: &Expr| {
        if let Expr::CompoundIdentifier(parts) = e
            && parts.len() >= 2
            && !own.contains(&parts[parts.len() - 2].value.to_ascii_lowercase())
        {
            correlated = true;
        }
        ControlFlow::<()>::Continue(())
    });
    correlated
}

/// `to_char(x, 'PG format')` etc.: translate the literal format in place.
fn translate_format(f: &mut Function) -> bool {
    let name = f.name.to_string().to_ascii_lowercase();
    let name = name.trim_start_matches("pg_catalog.");
    if !["to_char", "to_timestamp", "to_date"].contains(&name) {
        return false;
    }
    let FunctionArguments::List(list) = &mut f.args else {
        return false;
    };
    if list.args.len() != 2 {
        return false;
    }
    let FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(fmt),
        ..
    }))) = &mut list.args[1]
    else {
        return false;
    };
    if fmt.contains('%') && !fmt.contains("YYYY") {
        return false; // already a chrono format
    }
    match pg_to_chrono(fmt) {
        Some(new) if new != *fmt => {
            *fmt = new;
            true
        }
        _ => false,
    }
}

/// Translate a PostgreSQL date/time format to chrono's. `None` for a pattern
/// with a field chrono cannot express (the original then reaches DataFusion).
pub fn pg_to_chrono(pg: &str) -> Option<String> {
    const TOKENS: &[(&str, &str)] = &[
        ("YYYY", "%Y"),
        ("HH24", "%H"),
        ("HH12", "%I"),
        ("Month", "%B"),
        ("MONTH", "%B"),
        ("month", "%B"),
        ("Mon", "%b"),
        ("MON", "%b"),
        ("mon", "%b"),
        ("Day", "%A"),
        ("DAY", "%A"),
        ("day", "%A"),
        ("Dy", "%a"),
        ("DY", "%a"),
        ("dy", "%a"),
        ("DDD", "%j"),
        ("YY", "%y"),
        ("MM", "%m"),
        ("DD", "%d"),
        ("HH", "%I"),
        ("MI", "%M"),
        ("SS", "%S"),
        ("MS", "%3f"),
        ("US", "%6f"),
        ("AM", "%p"),
        ("PM", "%p"),
        ("am", "%P"),
        ("pm", "%P"),
        ("TZ", "%Z"),
        ("OF", "%:z"),
        ("IW", "%V"),
        ("IYYY", "%G"),
        ("Q", ""),
    ];
    let mut out = String::new();
    let mut rest = pg;
    'outer: while let Some(c) = rest.chars().next() {
        if c == '"' {
            // quoted literal text
            let end = rest[1..].find('"')? + 1;
            out.push_str(&rest[1..end].replace('%', "%%"));
            rest = &rest[end + 1..];
            continue;
        }
        if let Some(r) = rest.strip_prefix("FM") {
            rest = r; // fill mode: chrono pads; accepted as is
            continue;
        }
        for (tok, chrono) in TOKENS {
            if let Some(r) = rest.strip_prefix(tok) {
                if chrono.is_empty() {
                    return None;
                }
                out.push_str(chrono);
                rest = r;
                continue 'outer;
            }
        }
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_formats_become_chrono_formats() {
        assert_eq!(
            pg_to_chrono("YYYY-MM-DD HH24:MI:SS.US").as_deref(),
            Some("%Y-%m-%d %H:%M:%S.%6f")
        );
        assert_eq!(pg_to_chrono("YYYY-MM").as_deref(), Some("%Y-%m"));
        assert_eq!(
            pg_to_chrono("DD Mon YYYY HH12:MI AM").as_deref(),
            Some("%d %b %Y %I:%M %p")
        );
        assert_eq!(pg_to_chrono("\"week\" IW").as_deref(), Some("week %V"));
        assert_eq!(pg_to_chrono("YYYY \"Q\"Q"), None);
    }

    #[test]
    fn too_many_operators_are_refused_before_parsing() {
        let long = format!("SELECT {}", vec!["1"; MAX_OPERATORS + 2].join(" + "));
        let e = check_complexity(&long).unwrap_err();
        assert!(e.contains("2001 operators, at most 2000"), "{e}");
        let ok = format!("SELECT {}", vec!["1"; MAX_OPERATORS + 1].join(" + "));
        assert_eq!(check_complexity(&ok), Ok(()));
        // long IN lists and string contents are not operators
        let list = format!("SELECT 1 WHERE x IN ({})", vec!["1"; 50_000].join(", "));
        assert_eq!(check_complexity(&list), Ok(()));
        let text = format!("SELECT '{}'", "+".repeat(50_000));
        assert_eq!(check_complexity(&text), Ok(()));
        // counted per statement: a script of many small statements passes,
        // one long statement in it does not
        let small = format!("SELECT {};\n", ["1"; 11].join(" + "));
        let script = small.repeat(500);
        assert_eq!(check_complexity(&script), Ok(()));
        let e = check_complexity(&format!("{script}{long};{script}")).unwrap_err();
        assert!(e.contains("2001 operators, at most 2000"), "{e}");
        let huge = format!("SELECT '{}'", "x".repeat(MAX_STATEMENT_BYTES));
        let e = check_complexity(&huge).unwrap_err();
        assert!(
            e.starts_with("statement too large: 16777225 bytes, at most 16 MiB"),
            "{e}"
        );
    }

    #[test]
    fn statements_are_rewritten_only_when_needed() {
        assert_eq!(rewrite("SELECT 1"), None);
        assert_eq!(
            rewrite("SELECT to_char(order_ts, 'YYYY-MM') FROM orders").as_deref(),
            Some("SELECT to_char(order_ts, '%Y-%m') FROM orders")
        );
        assert_eq!(
            rewrite(
                "SELECT TO_TIMESTAMP('2024-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')"
            )
            .as_deref(),
            Some("SELECT TO_TIMESTAMP('2024-01-01 00:00:00.000000', '%Y-%m-%d %H:%M:%S.%6f')")
        );
        assert_eq!(
            rewrite("SELECT current_user, session_user").as_deref(),
            Some("SELECT current_user AS \"current_user\", session_user AS \"session_user\"")
        );
        assert_eq!(rewrite("SELEC current_user"), None);
        assert_eq!(
            rewrite("SELECT trim(s[i]) FROM generate_series(1, 2) AS i, string_to_array(current_setting('search_path'), ',') s").as_deref(),
            Some("SELECT TRIM(s[i]) FROM (SELECT value AS i FROM generate_series(1, 2)) AS i, (SELECT string_to_array(current_setting('search_path'), ',') AS s) s")
        );
        assert_eq!(
            rewrite("SELECT name AS \"table\" FROM t ORDER BY CASE WHEN s IN (SELECT x FROM u) THEN 0 ELSE 1 END, 1 LIMIT 5").as_deref(),
            Some("SELECT \"table\" FROM (SELECT name AS \"table\", CASE WHEN s IN (SELECT x FROM u) THEN 0 ELSE 1 END AS __crmdb_sort_1 FROM t) AS __crmdb_sorted ORDER BY __crmdb_sort_1, 1 LIMIT 5")
        );
        let cols =
            rewrite("SELECT data_type FROM information_schema.columns WHERE table_name = 't'")
                .unwrap_or_default();
        assert!(
            cols.contains("pg_data_type(data_type) AS data_type")
                && cols.contains("FROM crm.information_schema.columns) AS columns WHERE"),
            "{cols}"
        );
        // a column alias list, or a real table function, is left alone
        assert_eq!(rewrite("SELECT x FROM generate_series(1, 2) AS t(x)"), None);
        assert_eq!(rewrite("SELECT * FROM unnest([1, 2]) AS u"), None);
        assert_eq!(
            rewrite("SELECT s FROM pg_catalog.generate_series(0, 2) s"),
            None
        );
        assert_eq!(
            rewrite("SELECT r.rolname, ARRAY(SELECT b.rolname FROM pg_roles b WHERE b.oid = r.oid) AS memberof FROM pg_roles r").as_deref(),
            Some("SELECT r.rolname, (SELECT array_agg(b.rolname) FROM pg_roles b WHERE b.oid = r.oid) AS memberof FROM pg_roles r")
        );
    }

    #[test]
    fn like_with_another_escape_goes_through_like_escape() {
        assert_eq!(
            rewrite("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE $1::VARCHAR || '%' ESCAPE '/'")
                .as_deref(),
            Some("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE like_escape($1::VARCHAR || '%', '/')")
        );
        assert_eq!(
            rewrite("SELECT 1 WHERE 'a' ILIKE 'A!%' ESCAPE '!'").as_deref(),
            Some("SELECT 1 WHERE 'a' ILIKE like_escape('A!%', '!')")
        );
        assert_eq!(rewrite("SELECT 1 WHERE 'a' LIKE 'a\\_' ESCAPE '\\'"), None);
    }

    #[test]
    fn set_returning_functions_and_field_access() {
        // pgjdbc's DatabaseMetaData.getPrimaryKeys
        assert_eq!(
            rewrite(
                "SELECT (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, \
                 information_schema._pg_expandarray(i.indkey) AS KEYS FROM pg_catalog.pg_index i"
            )
            .as_deref(),
            Some(
                "SELECT (unnest(_pg_expandarray(i.indkey)))['n'] AS KEY_SEQ, \
                 unnest(_pg_expandarray(i.indkey)) AS KEYS FROM pg_catalog.pg_index i"
            )
        );
        assert_eq!(
            rewrite("SELECT r.a FROM r WHERE r.a = (r.KEYS).x").as_deref(),
            Some("SELECT r.a FROM r WHERE r.a = (r.KEYS)['x']")
        );
        // SQLAlchemy's key columns
        assert_eq!(
            rewrite("SELECT unnest(indkey) AS attnum, generate_subscripts(indkey, 1) AS ord FROM pg_index")
                .as_deref(),
            Some("SELECT unnest(indkey) AS attnum, unnest(generate_subscripts(indkey, 1)) AS ord FROM pg_index")
        );
    }

    #[test]
    fn dropped_subqueries_keep_their_placeholders() {
        let sql = "SELECT a.attname, CASE WHEN a.attidentity != $1::VARCHAR THEN (SELECT json_build_object($2::VARCHAR, s.seqstart) \
                   FROM pg_catalog.pg_sequence s WHERE a.attidentity != $3 AND s.seqrelid = a.attrelid) END AS ident \
                   FROM pg_catalog.pg_attribute a WHERE a.attnum > $4::SMALLINT";
        assert_eq!(
            rewrite(sql).as_deref(),
            Some(
                "SELECT a.attname, CASE WHEN a.attidentity <> $1::VARCHAR THEN CASE WHEN $2::VARCHAR IS NULL AND $3 IS NULL THEN NULL END END AS ident \
                 FROM pg_catalog.pg_attribute a WHERE a.attnum > $4::SMALLINT"
            )
        );
    }

    #[test]
    fn correlated_catalog_lookups_under_case_become_null() {
        let sql = "SELECT a.attname, CASE WHEN a.atthasdef THEN (SELECT pg_get_expr(d.adbin, d.adrelid) \
                   FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid) ELSE NULL END AS dflt \
                   FROM pg_catalog.pg_attribute a";
        assert_eq!(
            rewrite(sql).as_deref(),
            Some(
                "SELECT a.attname, CASE WHEN a.atthasdef THEN NULL ELSE NULL END AS dflt FROM pg_catalog.pg_attribute a"
            )
        );
        // a data table, or no correlation: left to DataFusion
        assert_eq!(
            rewrite(
                "SELECT CASE WHEN c.x THEN (SELECT max(o.amount) FROM orders o WHERE o.customer_id = c.customer_id) END FROM customers c"
            ),
            None
        );
        assert_eq!(
            rewrite(
                "SELECT CASE WHEN true THEN (SELECT max(oid) FROM pg_catalog.pg_class c WHERE c.relkind = 'r') END"
            ),
            None
        );
    }
}

//! The statement gate that runs before datafusion-postgres' own hooks: role
//! checks (42501), `SET` validation (42704 for unknown settings, admin-only
//! `datafusion.*`), PostgreSQL answers for `SHOW server_version` and the
//! transaction-isolation probes, and `SAVEPOINT` / `RELEASE` / `ROLLBACK TO`
//! accepted as no-ops (crmdb has no multi-statement transactions to unwind).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{ParamValues, ToDFSchema};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{CopyTarget, Expr, Set, Statement, Value, visit_statements};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::Type;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

use super::config::{Role, parse_duration};
use super::functions::{PG_DEFAULTS, SERVER_VERSION, SERVER_VERSION_NUM, SessionInfo};

/// A PostgreSQL error with a SQLSTATE.
pub fn pg_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// What a hook answers without running DataFusion.
enum Verdict {
    /// Refuse with this error.
    Deny(PgWireError),
    /// Answer with a command tag.
    Tag(&'static str),
    /// Answer `SHOW` with one value.
    Show(String, String),
    /// Let the next hook / DataFusion handle it.
    Pass,
}

/// The per-connection gate. Put it first in the hook list.
#[derive(Debug)]
pub struct GateHook {
    role: Role,
    info: Arc<SessionInfo>,
}

impl GateHook {
    /// A gate for a connection of `role`.
    pub fn new(role: Role, info: Arc<SessionInfo>) -> GateHook {
        GateHook { role, info }
    }

    fn judge(&self, statement: &Statement) -> Verdict {
        let admin = self.role == Role::Admin;
        match statement {
            // sqlparser parses `WITH … INSERT …`, `COPY (DELETE …) TO STDOUT`
            // and DML in derived tables as queries
            Statement::Query(_) | Statement::Copy { .. } if !admin && changes_data(statement) => {
                deny(self.role, "INSERT, UPDATE, DELETE or MERGE inside a query")
            }
            Statement::Query(_) => Verdict::Pass,
            // a read like SELECT (through the session, so masked for viewers)
            Statement::Copy {
                to: true,
                target: CopyTarget::Stdout,
                ..
            } => Verdict::Pass,
            Statement::Explain {
                statement, analyze, ..
            } => {
                if *analyze && !admin && !matches!(**statement, Statement::Query(_)) {
                    return deny(
                        self.role,
                        "EXPLAIN ANALYZE of a statement that changes data",
                    );
                }
                self.judge(statement)
            }
            Statement::Savepoint { .. } => Verdict::Tag("SAVEPOINT"),
            // psycopg sends it on rollback; protocol-level statements are pgwire's
            Statement::Deallocate { name, .. } if name.value.eq_ignore_ascii_case("all") => {
                Verdict::Tag("DEALLOCATE ALL")
            }
            Statement::ReleaseSavepoint { .. } => Verdict::Tag("RELEASE"),
            Statement::Rollback {
                savepoint: Some(_), ..
            } => Verdict::Tag("ROLLBACK"),
            Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. }
            | Statement::Discard { .. }
            | Statement::Deallocate { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. } => Verdict::Pass,
            Statement::ShowVariable { variable } => {
                let names: Vec<String> = variable
                    .iter()
                    .map(|v| v.value.to_ascii_lowercase())
                    .collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                match names.as_slice() {
                    ["server_version"] => {
                        Verdict::Show("server_version".into(), SERVER_VERSION.into())
                    }
                    ["server_version_num"] => {
                        Verdict::Show("server_version_num".into(), SERVER_VERSION_NUM.into())
                    }
                    ["transaction", "isolation", "level"] | ["transaction_isolation"] => {
                        Verdict::Show("transaction_isolation".into(), "read committed".into())
                    }
                    ["statement_timeout"] | ["time", "zone"] | ["timezone"] | ["all"] => {
                        Verdict::Pass
                    }
                    [one] if one.starts_with("datafusion.") || one.starts_with("crm.") => {
                        Verdict::Pass
                    }
                    ["crm", _] => Verdict::Pass,
                    [one] => match self.info.setting(one) {
                        Some(v) => Verdict::Show((*one).to_string(), v),
                        None => Verdict::Deny(pg_error(
                            "42704",
                            format!("unrecognized configuration parameter \"{one}\""),
                        )),
                    },
                    _ => Verdict::Pass,
                }
            }
            Statement::Set(set) => self.judge_set(set),
            _ if admin => Verdict::Pass,
            other => deny(self.role, statement_kind(other)),
        }
    }

    fn judge_set(&self, set: &Set) -> Verdict {
        let Set::SingleAssignment {
            variable, values, ..
        } = set
        else {
            // SET TIME ZONE, SET NAMES, SET SESSION CHARACTERISTICS ...: PostgreSQL
            // session properties datafusion-postgres answers itself.
            return Verdict::Pass;
        };
        let name = variable.to_string().to_ascii_lowercase();
        let value = values.first().map(value_text).unwrap_or_default();
        if name.starts_with("crm.") {
            // The analysis settings of the built-in views (as_of, thresholds):
            // anyone may change them for their own session; DataFusion's
            // config extension validates the value.
            return Verdict::Pass;
        }
        if name.starts_with("datafusion.") {
            if self.role != Role::Admin {
                return deny(self.role, "SET datafusion.*");
            }
            return Verdict::Pass;
        }
        if name == "statement_timeout" {
            return match parse_duration(&value) {
                Ok(_) => {
                    self.info.set(&name, &value);
                    Verdict::Pass
                }
                Err(e) => Verdict::Deny(pg_error(
                    "22023",
                    format!("invalid value for parameter \"statement_timeout\": {e}"),
                )),
            };
        }
        if PG_DEFAULTS.iter().any(|(k, _)| *k == name) || name == "time zone" {
            self.info.set(&name, &value);
            return Verdict::Pass;
        }
        Verdict::Deny(pg_error(
            "42704",
            format!("unrecognized configuration parameter \"{name}\""),
        ))
    }

    fn respond(&self, verdict: Verdict) -> Option<PgWireResult<Response>> {
        match verdict {
            Verdict::Pass => None,
            Verdict::Deny(e) => Some(Err(e)),
            Verdict::Tag(tag) => Some(Ok(Response::Execution(Tag::new(tag)))),
            Verdict::Show(name, value) => Some(show_response(&name, &value).map(Response::Query)),
        }
    }
}

fn deny(role: Role, what: &str) -> Verdict {
    Verdict::Deny(pg_error(
        "42501",
        format!("permission denied: role {role} may not run {what} (only admin may)"),
    ))
}

/// Whether `statement` contains a statement that changes data.
fn changes_data(statement: &Statement) -> bool {
    visit_statements(statement, |s| match s {
        Statement::Insert(_)
        | Statement::Update { .. }
        | Statement::Delete(_)
        | Statement::Merge { .. } => std::ops::ControlFlow::Break(()),
        _ => std::ops::ControlFlow::Continue(()),
    })
    .is_break()
}

fn value_text(e: &Expr) -> String {
    match e {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        other => other.to_string().trim_matches('\'').to_string(),
    }
}

fn statement_kind(s: &Statement) -> &'static str {
    match s {
        Statement::Insert(_) => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete(_) => "DELETE",
        Statement::Copy { .. } => "COPY",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateView { .. } => "CREATE VIEW",
        Statement::Drop { .. } => "DROP",
        Statement::Truncate { .. } => "TRUNCATE",
        Statement::AlterTable { .. } => "ALTER TABLE",
        Statement::CreateSchema { .. } => "CREATE SCHEMA",
        Statement::CreateFunction(_) => "CREATE FUNCTION",
        _ => "this statement",
    }
}

fn show_response(name: &str, value: &str) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(vec![FieldInfo::new(
        name.to_string(),
        None,
        None,
        Type::TEXT,
        FieldFormat::Text,
    )]);
    let mut encoder = DataRowEncoder::new(fields.clone());
    encoder.encode_field(&Some(value))?;
    let row = encoder.take_row();
    Ok(QueryResponse::new(
        fields,
        futures::stream::once(async move { Ok(row) }),
    ))
}

fn empty_plan(fields: Vec<Field>) -> PgWireResult<LogicalPlan> {
    let schema = Arc::new(Schema::new(fields))
        .to_dfschema()
        .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
    Ok(LogicalPlan::EmptyRelation(EmptyRelation {
        produce_one_row: true,
        schema: Arc::new(schema),
    }))
}

/// `SHOW crm.…`: the session's CRM analysis settings (a DataFusion config
/// extension, see [`crate::views::CrmOptions`]), answered from `ctx`.
fn crm_show(statement: &Statement, ctx: &SessionContext) -> Option<Verdict> {
    let Statement::ShowVariable { variable } = statement else {
        return None;
    };
    let name = variable
        .iter()
        .map(|v| v.value.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(".");
    if !name.starts_with("crm.") {
        return None;
    }
    let entries = ctx
        .state()
        .config_options()
        .extensions
        .get::<crate::views::CrmOptions>()
        .map(datafusion::common::config::ExtensionOptions::entries)
        .unwrap_or_default();
    Some(match entries.into_iter().find(|e| e.key == name) {
        Some(entry) => Verdict::Show(name, entry.value.unwrap_or_default()),
        None => Verdict::Deny(pg_error(
            "42704",
            format!("unrecognized configuration parameter \"{name}\""),
        )),
    })
}

/// `SET crm.…`: applied to this session's config extension; a bad value or
/// an unknown name is an error (the library's own SET fallback would ignore it).
async fn crm_set(statement: &Statement, ctx: &SessionContext) -> Option<PgWireResult<Response>> {
    let Statement::Set(Set::SingleAssignment { variable, .. }) = statement else {
        return None;
    };
    if !variable
        .to_string()
        .to_ascii_lowercase()
        .starts_with("crm.")
    {
        return None;
    }
    Some(match ctx.sql(&statement.to_string()).await {
        Ok(_) => Ok(Response::Execution(Tag::new("SET"))),
        Err(e) => {
            let message = e.strip_backtrace();
            let code = if message.contains("unrecognized configuration parameter") {
                "42704"
            } else {
                "22023"
            };
            Err(pg_error(
                code,
                message.trim_start_matches("Invalid or Unsupported Configuration: "),
            ))
        }
    })
}

#[async_trait]
impl QueryHook for GateHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(verdict) = crm_show(statement, ctx) {
            return self.respond(verdict);
        }
        if let Some(response) = crm_set(statement, ctx).await {
            return Some(response);
        }
        self.respond(self.judge(statement))
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let verdict = crm_show(statement, ctx).unwrap_or_else(|| self.judge(statement));
        match verdict {
            Verdict::Pass => None,
            Verdict::Deny(e) => Some(Err(e)),
            Verdict::Tag(_) => Some(empty_plan(vec![])),
            Verdict::Show(name, _) => {
                Some(empty_plan(vec![Field::new(name, DataType::Utf8, false)]))
            }
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        if let Some(verdict) = crm_show(statement, ctx) {
            return self.respond(verdict);
        }
        if let Some(response) = crm_set(statement, ctx).await {
            return Some(response);
        }
        self.respond(self.judge(statement))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn verdict(role: Role, sql: &str) -> String {
        let hook = GateHook::new(role, SessionInfo::new());
        let stmt = PostgresCompatibilityParser::new()
            .parse(sql)
            .unwrap()
            .remove(0);
        match hook.judge(&stmt) {
            Verdict::Pass => "pass".into(),
            Verdict::Tag(t) => t.into(),
            Verdict::Show(n, v) => format!("{n}={v}"),
            Verdict::Deny(e) => {
                let info: ErrorInfo = e.into();
                info.code
            }
        }
    }

    #[test]
    fn roles_and_settings_are_enforced() {
        assert_eq!(verdict(Role::Viewer, "SELECT 1"), "pass");
        assert_eq!(verdict(Role::Analyst, "INSERT INTO t VALUES (1)"), "42501");
        assert_eq!(verdict(Role::Analyst, "DROP TABLE orders"), "42501");
        assert_eq!(
            verdict(Role::Analyst, "COPY (SELECT 42) TO '/tmp/x.csv'"),
            "42501"
        );
        assert_eq!(
            verdict(Role::Analyst, "SET datafusion.execution.batch_size = 17"),
            "42501"
        );
        assert_eq!(
            verdict(Role::Admin, "SET datafusion.execution.batch_size = 17"),
            "pass"
        );
        assert_eq!(verdict(Role::Admin, "DROP TABLE orders"), "pass");
        assert_eq!(verdict(Role::Viewer, "COPY (SELECT 1) TO STDOUT"), "pass");
        assert_eq!(verdict(Role::Analyst, "COPY orders FROM STDIN"), "42501");
        assert_eq!(verdict(Role::Admin, "COPY orders FROM STDIN"), "pass");
        for dml in [
            "WITH x AS (SELECT 1) INSERT INTO orders SELECT * FROM orders",
            "WITH x AS (SELECT 1) DELETE FROM orders",
            "COPY (INSERT INTO orders SELECT * FROM orders) TO STDOUT",
            "SELECT * FROM (WITH x AS (SELECT 1) UPDATE orders SET amount = 0) t",
        ] {
            assert_eq!(verdict(Role::Analyst, dml), "42501", "{dml}");
            assert_eq!(verdict(Role::Viewer, dml), "42501", "{dml}");
        }
        assert_eq!(
            verdict(Role::Analyst, "WITH x AS (SELECT 1) SELECT * FROM x"),
            "pass"
        );
        assert_eq!(verdict(Role::Analyst, "SET no_such_setting = 5"), "42704");
        assert_eq!(
            verdict(Role::Analyst, "SET statement_timeout = '1s'"),
            "pass"
        );
        assert_eq!(
            verdict(Role::Analyst, "SET statement_timeout = 'soon'"),
            "22023"
        );
        assert_eq!(verdict(Role::Analyst, "SET extra_float_digits = 2"), "pass");
        assert_eq!(verdict(Role::Analyst, "SAVEPOINT a"), "SAVEPOINT");
        assert_eq!(verdict(Role::Analyst, "DEALLOCATE ALL"), "DEALLOCATE ALL");
        assert_eq!(verdict(Role::Analyst, "RELEASE SAVEPOINT a"), "RELEASE");
        assert_eq!(
            verdict(Role::Analyst, "ROLLBACK TO SAVEPOINT a"),
            "ROLLBACK"
        );
        assert_eq!(
            verdict(Role::Analyst, "SHOW server_version"),
            "server_version=16.6 (crmdb 0.1.0)"
        );
        assert_eq!(
            verdict(Role::Analyst, "SHOW search_path"),
            "search_path=\"$user\", public"
        );
        assert_eq!(verdict(Role::Analyst, "SHOW nothing_here"), "42704");
    }
}

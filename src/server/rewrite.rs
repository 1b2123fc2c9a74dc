//! SQL rewrites applied to the client's text before datafusion-postgres
//! parses it, for PostgreSQL behaviour DataFusion lacks:
//! - `to_char` / `to_timestamp` / `to_date` with a literal PostgreSQL format
//!   (`'YYYY-MM-DD HH24:MI:SS.US'`) get the equivalent chrono format
//!   (DataFusion would otherwise fail, or for `to_char` silently print the
//!   pattern itself);
//! - unaliased `current_user` / `session_user` / `user` in a select list get
//!   their own names as aliases (the library renames all of them to
//!   `session_user`, which made `SELECT current_user, session_user` fail);
//! - `LIKE … ESCAPE '/'` (SQLAlchemy) becomes the backslash escape DataFusion
//!   supports.
//!
//! A statement that does not parse here is passed on unchanged, so the
//! library's parser reports the error.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, SelectItem, Statement,
    Value, ValueWithSpan, VisitorMut, visit_expressions_mut, visit_statements_mut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrite `sql` if it needs it; `None` when nothing changed.
pub fn rewrite(sql: &str) -> Option<String> {
    let lower = sql.to_ascii_lowercase();
    let wanted = [
        "to_char",
        "to_timestamp",
        "to_date",
        "current_user",
        "session_user",
        "escape",
    ]
    .iter()
    .any(|k| lower.contains(k))
        || lower.contains("user,")
        || lower.ends_with("user");
    if !wanted {
        return None;
    }
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    let mut changed = false;
    let _ = visit_statements_mut(&mut statements, |s: &mut Statement| {
        let mut v = AliasUsers {
            changed: &mut changed,
        };
        let _ = s.visit(&mut v);
        ControlFlow::<()>::Continue(())
    });
    let _ = visit_expressions_mut(&mut statements, |e: &mut Expr| {
        match e {
            Expr::Function(f) => changed |= translate_format(f),
            Expr::Like {
                escape_char: Some(esc),
                pattern,
                ..
            }
            | Expr::ILike {
                escape_char: Some(esc),
                pattern,
                ..
            } => {
                if let Some(new) = rebase_escape(&esc.value, pattern) {
                    **pattern = new;
                    esc.value = Value::SingleQuotedString("\\".into());
                    changed = true;
                }
            }
            _ => {}
        }
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

use datafusion::sql::sqlparser::ast::VisitMut;

struct AliasUsers<'a> {
    changed: &'a mut bool,
}

impl VisitorMut for AliasUsers<'_> {
    type Break = ();
    fn pre_visit_query(
        &mut self,
        query: &mut datafusion::sql::sqlparser::ast::Query,
    ) -> ControlFlow<()> {
        if let datafusion::sql::sqlparser::ast::SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(Expr::Function(f)) = item
                    && matches!(f.args, FunctionArguments::None)
                    && f.name.0.len() == 1
                {
                    let name = f.name.to_string().to_ascii_lowercase();
                    if ["current_user", "session_user", "user", "current_role"]
                        .contains(&name.as_str())
                    {
                        *item = SelectItem::ExprWithAlias {
                            expr: Expr::Function(f.clone()),
                            alias: Ident::with_quote('"', name),
                        };
                        *self.changed = true;
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
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

/// Re-escape a LIKE pattern written with escape character `esc` so it uses
/// the backslash instead.
fn rebase_escape(esc: &Value, pattern: &Expr) -> Option<Expr> {
    let Value::SingleQuotedString(esc) = esc else {
        return None;
    };
    let mut chars = esc.chars();
    let (Some(e), None) = (chars.next(), chars.next()) else {
        return None;
    };
    if e == '\\' {
        return None;
    }
    let Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(p),
        span,
    }) = pattern
    else {
        return None;
    };
    let mut out = String::new();
    let mut it = p.chars();
    while let Some(c) = it.next() {
        if c == e {
            out.push('\\');
            out.push(it.next()?);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Some(Expr::Value(ValueWithSpan {
        value: Value::SingleQuotedString(out),
        span: *span,
    }))
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
        assert_eq!(
            rewrite("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg/_%' ESCAPE '/'")
                .as_deref(),
            Some("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' ESCAPE '\\'")
        );
        assert_eq!(rewrite("SELEC current_user"), None);
    }
}

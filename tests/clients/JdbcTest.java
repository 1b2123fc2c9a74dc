// pgjdbc (Debian's libpostgresql-jdbc-java) against crmdb serve: DatabaseMetaData
// getSchemas/getTables/getColumns/getPrimaryKeys, a PreparedStatement with
// timestamp and string parameters run past prepareThreshold (5), and
// setFetchSize with autocommit off (cursor-style fetching in portals).
//
// Usage: java -cp /usr/share/java/postgresql.jar JdbcTest.java HOST PORT PASSWORD
// Expects the test store of tests/it/server.rs (3 customers, 4 orders).
// Prints OK on success; a failed check exits non-zero.
import java.sql.*;
import java.time.Instant;
import java.util.*;

public class JdbcTest {
    static void check(boolean ok, String what, Object got) {
        if (!ok) throw new AssertionError(what + ": got " + got);
    }

    static void same(Object expected, Object got, String what) {
        check(Objects.equals(expected, got), what + " (expected " + expected + ")", got);
    }

    /** Rows of `rs` as lists of strings (getString) of the given columns. */
    static List<List<String>> rows(ResultSet rs, String... columns) throws SQLException {
        List<List<String>> out = new ArrayList<>();
        while (rs.next()) {
            List<String> row = new ArrayList<>();
            for (String c : columns) row.add(rs.getString(c));
            out.add(row);
        }
        rs.close();
        return out;
    }

    static List<String> column(ResultSet rs, String column) throws SQLException {
        List<String> out = new ArrayList<>();
        for (List<String> r : rows(rs, column)) out.add(r.get(0));
        return out;
    }

    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.setProperty("user", "analyst");
        p.setProperty("password", args[2]);
        p.setProperty("sslmode", "disable");
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/crm";
        try (Connection c = DriverManager.getConnection(url, p)) {
            DatabaseMetaData md = c.getMetaData();
            same("PostgreSQL", md.getDatabaseProductName(), "product name");
            same(16, md.getDatabaseMajorVersion(), "major version");
            same(6, md.getDatabaseMinorVersion(), "minor version");

            same(List.of("information_schema", "pg_catalog", "public"),
                column(md.getSchemas(), "TABLE_SCHEM"), "getSchemas");

            same(List.of("customer_snapshots", "customers", "export_runs", "interactions",
                    "order_items", "orders", "promotion_exposures", "promotions"),
                column(md.getTables(null, "public", "%", new String[] {"TABLE"}), "TABLE_NAME"),
                "getTables TABLE");
            same(List.of("cohort_retention", "customer_metrics", "kpi_monthly",
                    "promotion_effectiveness", "segment_summary", "segment_transitions"),
                column(md.getTables(null, "public", "%", new String[] {"VIEW"}), "TABLE_NAME"),
                "getTables VIEW");
            same(List.of(List.of("public", "orders", "TABLE")),
                rows(md.getTables(null, "public", "orders", null), "TABLE_SCHEM", "TABLE_NAME", "TABLE_TYPE"),
                "getTables orders");

            same(List.of(
                    List.of("order_id", "int8", "-5", "19", "0", "0", "1"),
                    List.of("customer_id", "int8", "-5", "19", "0", "0", "2"),
                    List.of("order_ts", "timestamptz", "93", "35", "6", "0", "3"),
                    List.of("channel", "text", "12", "2147483647", "0", "1", "4"),
                    List.of("store_id", "text", "12", "2147483647", "0", "1", "5"),
                    List.of("amount", "numeric", "2", "18", "2", "0", "6"),
                    List.of("discount", "numeric", "2", "18", "2", "1", "7"),
                    List.of("promotion_id", "int8", "-5", "19", "0", "1", "8"),
                    List.of("status", "text", "12", "2147483647", "0", "0", "9")),
                rows(md.getColumns(null, "public", "orders", "%"), "COLUMN_NAME", "TYPE_NAME",
                    "DATA_TYPE", "COLUMN_SIZE", "DECIMAL_DIGITS", "NULLABLE", "ORDINAL_POSITION"),
                "getColumns orders");

            String[] pk = {"TABLE_SCHEM", "TABLE_NAME", "COLUMN_NAME", "KEY_SEQ", "PK_NAME"};
            same(List.of(List.of("public", "orders", "order_id", "1", "orders_pkey")),
                rows(md.getPrimaryKeys(null, "public", "orders"), pk), "getPrimaryKeys orders");
            same(List.of(List.of("public", "order_items", "order_id", "1", "order_items_pkey"),
                    List.of("public", "order_items", "line_no", "2", "order_items_pkey")),
                rows(md.getPrimaryKeys(null, "public", "order_items"), pk),
                "getPrimaryKeys order_items");
            same(List.of(), rows(md.getPrimaryKeys(null, "public", "customer_metrics"), pk),
                "getPrimaryKeys of a view");

            // string + timestamp parameters; from the 5th run pgjdbc uses a
            // named server-side prepared statement
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT order_id, status, order_ts FROM orders WHERE order_ts >= ? AND channel <> ? ORDER BY order_id")) {
                for (int i = 1; i <= 7; i++) {
                    ps.setTimestamp(1, Timestamp.from(Instant.parse("2024-05-01T00:00:00Z")));
                    ps.setString(2, "store");
                    List<String> got = new ArrayList<>();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) {
                            got.add(rs.getLong(1) + " " + rs.getString(2) + " "
                                + rs.getTimestamp(3).toInstant());
                        }
                    }
                    same(List.of("11 completed 2024-05-02T10:00:00Z", "13 completed 2024-06-04T12:45:00Z"),
                        got, "prepared run " + i);
                }
                same(true, ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(),
                    "server-side prepared after 7 runs");
            }

            // setFetchSize with autocommit off: rows come in portals of 2; another
            // statement runs between two fetches of the open portal
            c.setAutoCommit(false);
            try (Statement st = c.createStatement(); Statement other = c.createStatement()) {
                st.setFetchSize(2);
                List<Long> ids = new ArrayList<>();
                try (ResultSet rs = st.executeQuery("SELECT order_id FROM orders ORDER BY order_id")) {
                    same(2, rs.getFetchSize(), "fetch size");
                    for (int i = 0; i < 2 && rs.next(); i++) ids.add(rs.getLong(1));
                    try (ResultSet count = other.executeQuery("SELECT count(*) FROM customers")) {
                        count.next();
                        same(3L, count.getLong(1), "a query between two fetches");
                    }
                    while (rs.next()) ids.add(rs.getLong(1));
                }
                same(List.of(10L, 11L, 12L, 13L), ids, "fetched rows");
                // a practically endless query: only a cursor-style fetch returns
                st.setFetchSize(5);
                List<Long> first = new ArrayList<>();
                try (ResultSet rs = st.executeQuery("SELECT x FROM generate_series(1, 100000000000) AS t(x)")) {
                    while (first.size() < 7 && rs.next()) first.add(rs.getLong(1));
                }
                same(List.of(1L, 2L, 3L, 4L, 5L, 6L, 7L), first, "first rows of an endless query");
            }
            c.commit();
            c.setAutoCommit(true);
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery("SELECT current_user")) {
                rs.next();
                same("analyst", rs.getString(1), "current_user");
            }
            // COPY … TO STDOUT through the driver's CopyManager
            org.postgresql.copy.CopyManager copy = c.unwrap(org.postgresql.PGConnection.class).getCopyAPI();
            java.io.StringWriter out = new java.io.StringWriter();
            long copied = copy.copyOut(
                "COPY (SELECT order_id, status FROM orders ORDER BY order_id) TO STDOUT WITH (FORMAT csv)", out);
            same(4L, copied, "CopyManager row count");
            same("10,completed\n11,completed\n12,returned\n13,completed\n", out.toString(), "CopyManager data");
        }
        System.out.println("OK");
    }
}

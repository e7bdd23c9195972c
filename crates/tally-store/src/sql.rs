//! A small builder for hand-written SQL with positional parameters in either engine's dialect
//! (`?` for SQLite, `$n` for PostgreSQL). Text and values are appended together, so a
//! placeholder can never drift from its value.

use sea_orm::{DbBackend, Statement, Value};

use crate::db::Backend;

pub(crate) struct Sql {
    backend: Backend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(backend: Backend, text: &str) -> Self {
        Self {
            backend,
            text: text.to_string(),
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        match self.backend {
            Backend::Postgres => {
                self.text.push('$');
                self.text.push_str(&self.values.len().to_string());
            }
            Backend::Sqlite => self.text.push('?'),
        }
        self
    }

    /// Appends `(?, ?, ...)` bound to `values`.
    pub(crate) fn bind_tuple<I: IntoIterator<Item = Value>>(&mut self, values: I) -> &mut Self {
        self.text.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self.text.push(')');
        self
    }

    /// Appends `tuples` separated by commas: the rows of a multi-row `VALUES`.
    pub(crate) fn bind_tuples<T, I>(&mut self, tuples: T) -> &mut Self
    where
        T: IntoIterator<Item = I>,
        I: IntoIterator<Item = Value>,
    {
        for (i, tuple) in tuples.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind_tuple(tuple);
        }
        self
    }

    pub(crate) fn build(self) -> Statement {
        let backend = match self.backend {
            Backend::Sqlite => DbBackend::Sqlite,
            Backend::Postgres => DbBackend::Postgres,
        };
        Statement::from_sql_and_values(backend, self.text, self.values)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// How many values `statement` binds.
    pub(crate) fn values(statement: &Statement) -> usize {
        statement.values.as_ref().map_or(0, |v| v.0.len())
    }

    #[test]
    fn each_engine_gets_its_placeholders() {
        for (backend, expected) in [
            (Backend::Sqlite, "SELECT ? + ?, x IN (?, ?) FROM t"),
            (Backend::Postgres, "SELECT $1 + $2, x IN ($3, $4) FROM t"),
        ] {
            let mut sql = Sql::new(backend, "SELECT ");
            sql.bind(1).push(" + ").bind(2).push(", x IN ");
            sql.bind_tuple([Value::from(3), Value::from(4)])
                .push(" FROM t");
            let statement = sql.build();
            assert_eq!(statement.sql, expected);
            assert_eq!(values(&statement), 4);
        }
    }

    #[test]
    fn rows_of_values_are_separated() {
        let mut sql = Sql::new(Backend::Postgres, "VALUES ");
        sql.bind_tuples([
            [Value::from(1), Value::from(2)],
            [Value::from(3), Value::from(4)],
        ]);
        assert_eq!(sql.build().sql, "VALUES ($1, $2), ($3, $4)");
    }
}

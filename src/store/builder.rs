//! A dynamic query builder whose placeholders are numbered (`$1`, `$2`, …): both SQLite and
//! PostgreSQL read them, whereas sqlx's own builder writes `?` for the `Any` driver, which
//! PostgreSQL refuses. It offers the subset of sqlx's `QueryBuilder` the store uses.

use sqlx::any::{Any, AnyArguments};
use sqlx::query::{Query, QueryScalar};
use sqlx::{Arguments, Encode, Type};
use std::fmt::{Display, Write};

/// SQL text with its bound values, placeholders numbered as they are pushed.
pub struct QueryBuilder<'a> {
    sql: String,
    args: Option<AnyArguments<'a>>,
    bound: usize,
}

impl<'a> QueryBuilder<'a> {
    /// A builder starting with `init`.
    pub fn new(init: impl Into<String>) -> Self {
        Self {
            sql: init.into(),
            args: Some(AnyArguments::default()),
            bound: 0,
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: impl Display) -> &mut Self {
        write!(self.sql, "{sql}").expect("writing to a String cannot fail");
        self
    }

    /// Appends a placeholder and binds `value` to it.
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        self.bound += 1;
        write!(self.sql, "${}", self.bound).expect("writing to a String cannot fail");
        self.args
            .as_mut()
            .expect("bind after build")
            .add(value)
            .expect("the store binds only integers, floats, text and bytes");
        self
    }

    /// A helper that puts `separator` between the items pushed through it.
    pub fn separated<'qb>(&'qb mut self, separator: &'static str) -> Separated<'qb, 'a> {
        Separated {
            builder: self,
            separator,
            first: true,
        }
    }

    /// Appends `VALUES (…), (…)`, one parenthesised tuple per item, filled by `push_tuple`.
    pub fn push_values<I, F>(&mut self, tuples: I, mut push_tuple: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(Separated<'_, 'a>, I::Item),
    {
        self.push("VALUES ");
        for (i, tuple) in tuples.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            push_tuple(self.separated(", "), tuple);
            self.push(")");
        }
        self
    }

    /// The query, ready to execute; the builder is spent.
    pub fn build(&mut self) -> Query<'_, Any, AnyArguments<'_>> {
        let args = self.args.take().expect("built twice");
        sqlx::query_with(&self.sql, args)
    }

    /// The query yielding the first column of each row; the builder is spent.
    pub fn build_query_scalar<O>(&mut self) -> QueryScalar<'_, Any, O, AnyArguments<'_>>
    where
        O: Send + Unpin,
        (O,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let args = self.args.take().expect("built twice");
        sqlx::query_scalar_with(&self.sql, args)
    }

    /// The SQL text so far.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

/// Pushes items into a [`QueryBuilder`] with a separator between them.
pub struct Separated<'qb, 'a> {
    builder: &'qb mut QueryBuilder<'a>,
    separator: &'static str,
    first: bool,
}

impl<'a> Separated<'_, 'a> {
    fn separate(&mut self) {
        if !self.first {
            self.builder.push(self.separator);
        }
        self.first = false;
    }

    /// Appends SQL text as the next item.
    pub fn push(&mut self, sql: impl Display) -> &mut Self {
        self.separate();
        self.builder.push(sql);
        self
    }

    /// Appends a bound value as the next item.
    pub fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + Encode<'a, Any> + Type<Any>,
    {
        self.separate();
        self.builder.push_bind(value);
        self
    }

    /// Appends SQL text to the current item, without a separator.
    pub fn push_unseparated(&mut self, sql: impl Display) -> &mut Self {
        self.builder.push(sql);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_across_values_and_lists() {
        let mut q = QueryBuilder::new("INSERT INTO t (a, b) ");
        q.push_values([(1_i64, "x"), (2, "y")], |mut b, (n, s)| {
            b.push_bind(n).push_bind(s);
        });
        q.push(" WHERE c = ").push_bind(3_i64);
        assert_eq!(
            q.sql(),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) WHERE c = $5"
        );
    }
}

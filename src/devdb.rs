//! The private PostgreSQL cluster that `demo` starts when no database answers.

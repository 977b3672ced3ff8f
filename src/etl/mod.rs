//! Getting the dataset in: `load` (CSV files -> staging -> validated tables, swapped in
//! atomically) and `generate` (a synthetic dataset in exactly the original CSV format).

pub mod csv;
pub mod generate;
pub mod load;

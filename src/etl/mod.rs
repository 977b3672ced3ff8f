//! Getting the dataset in: `load` (CSV files -> staging -> validated tables, swapped in
//! atomically) and `generate` (a synthetic dataset in exactly the original CSV format), both
//! following the one description of the files in `dataset`.

pub mod csv;
pub mod dataset;
pub mod generate;
pub mod load;

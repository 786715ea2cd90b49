//! What an operator runs against a sale: the [`audit`] of its promises, the DLQ
//! [`redrive`], the stampede [`load`] generator, and the [`init_time`] of each function.

pub mod audit;
pub mod init_time;
pub mod load;
pub mod redrive;

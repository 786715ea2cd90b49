//! What an operator runs against a sale: the [`audit`] of its promises, the DLQ
//! [`redrive`], the stampede [`load`] generator, the [`init_time`] of each function, and
//! the deploy's [`smoke`] test.

pub mod audit;
pub mod init_time;
pub mod load;
pub mod redrive;
pub mod smoke;

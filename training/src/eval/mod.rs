//! Scoring: metrics, the trained network on the catalogue split (`evaluate`), and exported
//! models through the runtime (`runner`: station frames and the attribute heads, `real`: real
//! photos, `heads`, `compare`).

pub mod compare;
pub mod evaluate;
pub mod heads;
pub mod metrics;
pub mod real;
pub mod runner;

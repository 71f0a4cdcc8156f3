#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Black-box tests of the whole platform: the real app on port 0 against real PostgreSQL
//! (a fresh set of databases per test) and, where the Redis mode is under test, real Redis.

mod auth_flows;
mod billing;
mod billing_ledger;
mod broker;
mod carts;
mod catalogue;
mod cli;
mod coupons;
mod events;
mod files;
mod gateway;
mod hangups;
mod harness;
mod hostile;
mod images;
mod inventory;
mod limits;
mod openapi;
mod order_extras;
mod orders;
mod product_reads;
mod projects;
mod reservations;
mod returns;
mod sale;
mod stock_operations;
mod tenancy;
mod tokens;

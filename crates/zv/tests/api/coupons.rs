//! Coupons, payment methods, subscriptions and `/graphql/billing` (billing.md §5–§7).

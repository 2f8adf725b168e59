//! `CustomerDataMapper`: platform customer ↔ 1C counterparty, driven by the mapping file.

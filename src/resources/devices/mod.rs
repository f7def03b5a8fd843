//! Phone provisioning objects: device models (the catalog), templates (operators'
//! overrides), profiles, customers' provisioning settings and devices, plus the brand tree,
//! detection, preview, token and secret resets, fetch history, bans and kazoo import.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::resellers::check_reseller;
use crate::app::App;
use crate::changes::Op;
use crate::devices::catalog::{compile_ua, file_regex, FileSpec};
use crate::devices::security::{new_token, token_hash};
use crate::devices::{render, LineSpec, MASK, SECRET_SETTINGS};
use crate::error::{Error, Result};
use crate::model::{self, Actor};
use crate::resources::{create_one, record, Created, ListQuery, Resource};
use crate::store::devices::{self as st};
use crate::store::{exists, get_as, get_from_view, list_as, Conn};

mod actions;
mod customer_settings;
mod device;
mod models;
mod profiles;
mod settings;
mod templates;
pub use actions::*;
pub use customer_settings::*;
pub use device::*;
pub use models::*;
pub use profiles::*;
use settings::*;
pub use templates::*;

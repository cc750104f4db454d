-- The schema SQLModel.metadata.create_all makes on postgresql, made by
-- `python -m tests.migrations.freeze_schema postgresql` (see that module).
-- Frozen at commit e00171c, the released Tollgate 0.1.0, before migration 0002 (BIGINT token columns).
-- Never regenerate it: the upgrade tests build "a database made by the released code" from it.

CREATE TABLE alerts_sent (
	counter_key VARCHAR(600) NOT NULL,
	limit_pico BIGINT NOT NULL,
	threshold VARCHAR(16) NOT NULL,
	sent_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (counter_key, limit_pico, threshold)
);

CREATE TABLE budget_leases (
	counter_key VARCHAR(600) NOT NULL,
	holder VARCHAR(64) NOT NULL,
	amount_pico BIGINT NOT NULL,
	expires_at FLOAT NOT NULL,
	PRIMARY KEY (counter_key, holder)
);

CREATE INDEX ix_budget_leases_expires_at ON budget_leases (expires_at);

CREATE TABLE invoices (
	id VARCHAR(128) NOT NULL,
	entity_type VARCHAR(8) NOT NULL,
	entity_id VARCHAR(256) NOT NULL,
	period VARCHAR(7) NOT NULL,
	currency VARCHAR(8) NOT NULL,
	cost_usd VARCHAR(64) NOT NULL,
	exchange_rate VARCHAR(64) NOT NULL,
	subtotal VARCHAR(64) NOT NULL,
	markup_percent VARCHAR(64) NOT NULL,
	markup VARCHAR(64) NOT NULL,
	total VARCHAR(64) NOT NULL,
	requests BIGINT NOT NULL,
	unpriced_requests BIGINT NOT NULL,
	status VARCHAR(16) NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	PRIMARY KEY (id),
	CONSTRAINT uq_invoices_entity_period UNIQUE (entity_type, entity_id, period)
);

CREATE INDEX ix_invoices_period ON invoices (period);

CREATE TABLE spend_counters (
	counter_key VARCHAR(600) NOT NULL,
	spent_pico BIGINT NOT NULL,
	PRIMARY KEY (counter_key)
);

CREATE TABLE usage_records (
	request_id VARCHAR(64) NOT NULL,
	started_at TIMESTAMP WITH TIME ZONE NOT NULL,
	ended_at TIMESTAMP WITH TIME ZONE NOT NULL,
	method VARCHAR(16) NOT NULL,
	endpoint VARCHAR(256) NOT NULL,
	provider VARCHAR(128),
	model_requested VARCHAR(256),
	model_served VARCHAR(256),
	stream BOOLEAN NOT NULL,
	status INTEGER NOT NULL,
	user_id VARCHAR(256),
	team_id VARCHAR(256),
	thread_id VARCHAR(256),
	agent VARCHAR(256),
	key_name VARCHAR(256),
	tags VARCHAR,
	input_tokens INTEGER NOT NULL,
	cached_input_tokens INTEGER NOT NULL,
	cache_write_tokens INTEGER NOT NULL,
	cache_write_1h_tokens INTEGER NOT NULL,
	output_tokens INTEGER NOT NULL,
	reasoning_tokens INTEGER NOT NULL,
	audio_input_tokens INTEGER NOT NULL,
	audio_output_tokens INTEGER NOT NULL,
	service_tier VARCHAR(32),
	cost_pico BIGINT,
	unpriced BOOLEAN NOT NULL,
	usage_source VARCHAR(16) NOT NULL,
	latency_ms FLOAT NOT NULL,
	ttfb_ms FLOAT,
	error_type VARCHAR(64),
	PRIMARY KEY (request_id)
);

CREATE INDEX ix_usage_records_model_requested ON usage_records (model_requested);

CREATE INDEX ix_usage_records_started_at ON usage_records (started_at);

CREATE INDEX ix_usage_records_team_id ON usage_records (team_id);

CREATE INDEX ix_usage_records_user_id ON usage_records (user_id);

CREATE TABLE usage_rollups (
	period VARCHAR(8) NOT NULL,
	period_start VARCHAR(10) NOT NULL,
	user_id VARCHAR(256) NOT NULL,
	team_id VARCHAR(256) NOT NULL,
	agent VARCHAR(256) NOT NULL,
	model VARCHAR(256) NOT NULL,
	provider VARCHAR(128) NOT NULL,
	requests BIGINT NOT NULL,
	input_tokens BIGINT NOT NULL,
	cached_input_tokens BIGINT NOT NULL,
	cache_write_tokens BIGINT NOT NULL,
	output_tokens BIGINT NOT NULL,
	reasoning_tokens BIGINT NOT NULL,
	audio_input_tokens BIGINT NOT NULL,
	audio_output_tokens BIGINT NOT NULL,
	cost_pico BIGINT NOT NULL,
	unpriced_requests BIGINT NOT NULL,
	PRIMARY KEY (period, period_start, user_id, team_id, agent, model, provider)
);

CREATE TABLE invoice_lines (
	invoice_id VARCHAR(128) NOT NULL,
	kind VARCHAR(8) NOT NULL,
	key VARCHAR(256) NOT NULL,
	requests BIGINT NOT NULL,
	unpriced_requests BIGINT NOT NULL,
	input_tokens BIGINT NOT NULL,
	cached_input_tokens BIGINT NOT NULL,
	cache_write_tokens BIGINT NOT NULL,
	cache_write_1h_tokens BIGINT NOT NULL,
	output_tokens BIGINT NOT NULL,
	reasoning_tokens BIGINT NOT NULL,
	audio_input_tokens BIGINT NOT NULL,
	audio_output_tokens BIGINT NOT NULL,
	cost_usd VARCHAR(64) NOT NULL,
	amount VARCHAR(64) NOT NULL,
	unit_prices VARCHAR,
	PRIMARY KEY (invoice_id, kind, key),
	FOREIGN KEY(invoice_id) REFERENCES invoices (id)
);


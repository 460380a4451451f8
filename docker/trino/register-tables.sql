-- Register the call store's tables with Trino once (they stay registered in the bucket):
--   docker compose -f docker/docker-compose.yml exec trino trino -f /etc/trino/sql/register-tables.sql
CREATE SCHEMA IF NOT EXISTS delta.weave WITH (location = 's3://weave-stream/trino/weave');
CALL delta.system.register_table(schema_name => 'weave', table_name => 'calls', table_location => 's3://weave-stream/store/calls');
CALL delta.system.register_table(schema_name => 'weave', table_name => 'values', table_location => 's3://weave-stream/store/values');
CALL delta.system.register_table(schema_name => 'weave', table_name => 'alerts', table_location => 's3://weave-stream/store/alerts');
CALL delta.system.register_table(schema_name => 'weave', table_name => 'catalog', table_location => 's3://weave-stream/store/catalog');
CALL delta.system.register_table(schema_name => 'weave', table_name => 'datasets', table_location => 's3://weave-stream/store/datasets');
CALL delta.system.register_table(schema_name => 'weave', table_name => 'subcalls', table_location => 's3://weave-stream/store/subcalls');

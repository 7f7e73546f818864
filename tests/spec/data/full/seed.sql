CREATE TABLE refunds (customer_id int, amount_cents int);

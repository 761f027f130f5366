DROP TABLE subscriber_counts;
DROP TABLE device_notices;

-- The original system's hourly statistics query (the rows of cdn_statistics.csv, SPEC section 3),
-- computed straight from the raw rows of cdn_logs for one UTC date, all distributions together.
-- TIME is the UTC hour. The filter on the partition column dt means only that date's files are read.
--   cdnlake sql -f docs/queries/hourly_statistics.sql --date 2024-05-01
SELECT
  dt                                                                    AS `DATE`,
  hour                                                                  AS `TIME`,
  count(*)                                                              AS REQUEST_COUNT,
  count_if(x_edge_response_result_type = 'Hit')                         AS HIT_COUNT,
  count_if(x_edge_response_result_type = 'Miss')                        AS MISS_COUNT,
  count_if(x_edge_response_result_type IN ('LimitExceeded', 'CapacityExceeded', 'Error')) AS ERROR_COUNT,
  -- the viewer went away during a successful response: the edge logs its own result as Error
  count_if(sc_status BETWEEN 200 AND 299 AND x_edge_result_type = 'Error') AS INCOMPLETE_COUNT,
  count_if(status_class = 2)                                            AS HTTP2XX_COUNT,
  count_if(status_class = 3)                                            AS HTTP3XX_COUNT,
  count_if(status_class = 4)                                            AS HTTP4XX_COUNT,
  count_if(status_class = 5)                                            AS HTTP5XX_COUNT,
  coalesce(sum(sc_bytes), 0)                                            AS BYTES_REQUESTED,
  coalesce(sum(CASE WHEN x_edge_response_result_type = 'Miss' THEN sc_bytes END), 0) AS BYTES_MISSED
FROM cdn_logs
WHERE dt = '${date}'
GROUP BY dt, hour
ORDER BY `TIME`

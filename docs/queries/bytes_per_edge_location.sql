-- Traffic per CloudFront edge location (POP) on one UTC date: requests, bytes, GB and hit ratio.
-- The first three letters of the location are the nearest airport code (NRT = Tokyo Narita).
--   cdnlake sql -f docs/queries/bytes_per_edge_location.sql --date 2024-05-01
SELECT
  x_edge_location                                                   AS edge_location,
  count(*)                                                          AS requests,
  coalesce(sum(sc_bytes), 0)                                        AS bytes,
  round(coalesce(sum(sc_bytes), 0) / power(2, 30), 3)               AS gb,
  round(count_if(x_edge_response_result_type = 'Hit') / count(*), 4) AS hit_ratio
FROM cdn_logs
WHERE dt = '${date}'
GROUP BY x_edge_location
ORDER BY bytes DESC, edge_location

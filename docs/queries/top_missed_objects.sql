-- The objects that missed the cache most on one UTC date: candidates for a longer TTL, a cache
-- policy fix or pre-warming. GB = 2^30 bytes, as in the report.
--   cdnlake sql -f docs/queries/top_missed_objects.sql --date 2024-05-01
SELECT
  distro,
  cs_uri_stem                                                            AS uri,
  count_if(x_edge_response_result_type = 'Miss')                         AS misses,
  count(*)                                                               AS requests,
  round(count_if(x_edge_response_result_type = 'Miss') / count(*), 4)    AS miss_ratio,
  coalesce(sum(CASE WHEN x_edge_response_result_type = 'Miss' THEN sc_bytes END), 0) AS bytes_missed,
  round(coalesce(sum(CASE WHEN x_edge_response_result_type = 'Miss' THEN sc_bytes END), 0) / power(2, 30), 3)
                                                                         AS gb_missed
FROM cdn_logs
WHERE dt = '${date}'
GROUP BY distro, cs_uri_stem
HAVING misses > 0
ORDER BY misses DESC, bytes_missed DESC, uri
LIMIT 25

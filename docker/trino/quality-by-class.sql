-- Mean judge score and calls per document class per hour, over the last day: the same
-- question as calls(since="24h").group_by("text_extract.doc_class.label", every="1h")
-- .agg(score=("text_extract.faithfulness.score", "mean")), asked of the same tables.
--   docker compose -f docker/docker-compose.yml exec trino trino -f /etc/trino/sql/quality-by-class.sql
SELECT element_at(l.fields_text, 'label') AS doc_class,
       date_trunc('hour', c.started_at) AS hour,
       count(*) AS calls,
       avg(element_at(s.fields_number, 'score')) AS mean_score
FROM delta.weave.calls c
LEFT JOIN delta.weave."values" l
       ON l.call_id = c.id AND l.topology = 'text_extract' AND l.column_name = 'doc_class'
      AND l.trial = 0 AND l.date = c.date
LEFT JOIN delta.weave."values" s
       ON s.call_id = c.id AND s.topology = 'text_extract' AND s.column_name = 'faithfulness'
      AND s.trial = 0 AND s.date = c.date
WHERE c.started_at >= current_timestamp - INTERVAL '1' DAY
  AND c.date >= CAST(current_date - INTERVAL '1' DAY AS varchar)
GROUP BY 1, 2
ORDER BY 2, 1;

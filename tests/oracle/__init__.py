"""oracle: the checks of mxray's output against what others say it must be.

tshark (compare_smtp, compare_pop3, compare_imap, compare_tls,
compare_streams), Zeek's and Suricata's published expectations
(compare_oracles, compare_oracles_pop3), the capture lab's ground truth
(truth_smtp, truth_pop3, truth_imap, truth_message), the expected findings
and diagnoses (check_findings, check_diagnosis), the golden records of
pcaps/ (golden) and the public corpus run clean (corpus_check).  What they
share is in common.  Each runs from the repository's root as a file,
`python3 tests/oracle/NAME.py ...`, or as a module, `PYTHONPATH=tests
python3 -m oracle.NAME ...`; tests/CMakeLists.txt runs them as ctests.
"""

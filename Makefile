# Convenience targets; each is one script under scripts/ (the README's commands).
.PHONY: demo ui cluster test stop bench
demo:
	./scripts/demo.sh
ui:
	./scripts/airflow.sh
cluster:
	./scripts/cluster.sh up
test:
	./scripts/test.sh
stop:
	./scripts/stop.sh
bench:
	./scripts/bench.sh

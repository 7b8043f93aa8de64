"""The Docker-free local stage: template reader, AWS emulator, Vanta stand-in, runtime, fronts.

- stage.py: the whole stage in one object (StageConfig, LocalStage); __main__.py: `make local`
- template.py reads template.yaml into spec.py's StackSpec, through intrinsics.py (parameters,
  conditions, intrinsic functions) and cfn.py (the YAML loader, local names and ARNs)
- aws.py: the AWS emulator (moto) and the stack's resources in it, dead letters included
- runtime.py: the Lambda runtime's pools and invocations; worker.py: one execution environment;
  runtime_api.py: its Runtime API; report_line.py: the REPORT line it writes and tools read
- invoke_api.py: the Lambda Invoke API; apigw.py: the API Gateway front, apigw_proxy.py its
  proxy integration; schedules.py: the template's schedules; ports.py: port probes
- vanta_standin.py: the Vanta stand-in's HTTP side and CLI; vanta_faults.py its fault plan,
  vanta_state.py its state, vanta_data.py its generated data, vanta_query.py the listing contract
"""

__all__: list[str] = []

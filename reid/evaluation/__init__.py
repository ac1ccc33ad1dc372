"""Evaluation: ranking metrics of the SYSU-MM01 / RegDB / LLCM protocols, the protocol runners,
cluster-contrast's k-reciprocal re-ranking (after Zhong et al.), and cluster-quality metrics of pseudo-labels."""
from .cluster_quality import ClusterQuality, cluster_quality
from .protocols import ProtocolResult, SettingResult, evaluate_protocol, protocol_settings
from .ranking import PROTOCOLS, RankingResult, evaluate_ranking
from .rerank import rerank_distances

__all__ = [
    "evaluate_ranking", "RankingResult", "PROTOCOLS", "evaluate_protocol", "protocol_settings", "ProtocolResult",
    "SettingResult", "rerank_distances", "cluster_quality", "ClusterQuality",
]
